#pragma once
// The node's local revocation set in front of a durable (shared) revocation store. Token checks
// read only the local set, so introspection keeps answering right while Redis is down and costs
// no network round trip; writes go to both. The local set is loaded from the durable store by
// sync() (at start, then periodically by the health monitor) and fails closed until the first
// load succeeded: a node that never saw the revocation list answers "unavailable", not "active".
#include <atomic>
#include <functional>
#include <memory>

#include "persistence/stores.hpp"

namespace credo::persistence {

class revocation_mirror final : public revocation_store {
 public:
  explicit revocation_mirror(std::shared_ptr<revocation_store> durable);

  /// Writes go to the local set first (this node refuses the token at once, even if the
  /// durable write fails), then to the durable store, whose status is returned.
  status revoke_token(const std::string& jti, std::int64_t exp) override;
  status add_cutoff(const std::string& user_id, const std::string& client_id,
                    const std::string& scope, std::int64_t cutoff) override;
  /// Local reads; errc::temporarily_unavailable before the first successful sync().
  result<bool> is_token_revoked(const std::string& jti) override;
  result<std::int64_t> cutoff(const std::string& user_id, const std::string& client_id,
                              const std::string& scope) override;
  result<revocation_snapshot> snapshot() override;

  /// Merges the durable store's contents into the local set (entries only ever add: a
  /// revocation or a raised cut-off is never undone).
  status sync();
  bool loaded() const;

  /// Called with each local write, before it goes to the durable store (the cluster broadcasts
  /// it to every node). Set once, before the node serves.
  void on_write(std::function<void(revocation_snapshot)> listener);
  /// Revocations another node made (and wrote to the durable store): the local set only.
  void apply(const revocation_snapshot& s);

 private:
  std::shared_ptr<revocation_store> durable_;
  std::shared_ptr<revocation_store> local_;
  std::atomic<bool> loaded_{false};
  std::function<void(revocation_snapshot)> listener_;
};

}  // namespace credo::persistence
