#pragma once
// Redis implementations of the stores ARCHITECTURE.md puts in Redis: sessions with the refresh-
// token and per-user indexes, and the revocation list. Keys live under `prefix` (default
// "credo:"); every key expires with what it describes. Multi-key changes are MULTI/EXEC
// transactions sent as one pipeline.
#include <memory>
#include <string>

#include "persistence/redis_client.hpp"
#include "persistence/stores.hpp"

namespace credo::persistence {

std::shared_ptr<session_store> make_redis_session_store(std::shared_ptr<redis_client> redis,
                                                        std::string prefix = "credo:");

/// Errors are returned, not guessed. A node reads revocations from its local set
/// (revocation_mirror.hpp), loaded from this store with snapshot().
std::shared_ptr<revocation_store> make_redis_revocation_store(std::shared_ptr<redis_client> redis,
                                                              std::string prefix = "credo:");

/// Authorization codes (single use, kept until they expire so that a replay is detected).
std::shared_ptr<code_store> make_redis_code_store(std::shared_ptr<redis_client> redis,
                                                  std::string prefix = "credo:");

/// Rate-limit buckets and lockouts, one JSON value per key, expiring when it stops mattering.
std::shared_ptr<bucket_store> make_redis_bucket_store(std::shared_ptr<redis_client> redis,
                                                      std::string prefix = "credo:");

}  // namespace credo::persistence
