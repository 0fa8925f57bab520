#include "app/backends.hpp"

#include <openssl/crypto.h>

#include "persistence/client_cache.hpp"
#include "persistence/kafka_producer.hpp"
#include "persistence/memory_stores.hpp"
#include "persistence/migrations.hpp"
#include "persistence/pg_client.hpp"
#include "persistence/pg_stores.hpp"
#include "persistence/redis_client.hpp"
#include "persistence/redis_stores.hpp"
#include "persistence/revocation_mirror.hpp"
#include "protocols/crypto.hpp"

namespace credo::app {
namespace {

std::optional<std::string> hex_decode(const std::string& s) {
  std::string out(s.size() / 2, '\0');
  std::size_t n = 0;
  // Separator '\0': plain hex digits, no colons.
  if (OPENSSL_hexstr2buf_ex(reinterpret_cast<unsigned char*>(out.data()), out.size(), &n,
                            s.c_str(), '\0') != 1)
    return std::nullopt;
  out.resize(n);
  return out;
}

/// 32 raw bytes from 64 hex digits or base64/base64url text.
std::optional<std::string> decode_kek(const std::string& text) {
  std::optional<std::string> raw;
  if (text.size() == 64)
    raw = hex_decode(text);
  if (!raw)
    raw = protocols::base64_decode(text);
  if (!raw)
    raw = protocols::base64url_decode(text);
  if (!raw || raw->size() != 32)
    return std::nullopt;
  return raw;
}

}  // namespace

std::string backends::describe() const {
  std::string out = database ? "postgres" : "memory";
  out += redis ? "+redis" : "+memory";
  if (kafka)
    out += "+kafka";
  return out;
}

result<backends> open_backends(const backend_config& config) {
  backends b;
  b.stores = persistence::make_memory_stores();
  if (!config.kafka_brokers.empty() && config.database_url.empty())
    return {errc::invalid_request,
            "KAFKA_BROKERS needs DATABASE_URL: audit events reach Kafka through the PostgreSQL "
            "outbox"};
  if (!config.database_url.empty()) {
    auto options = persistence::parse_database_url(config.database_url);
    if (!options)
      return {errc::invalid_request, "DATABASE_URL: " + options.description()};
    auto kek = decode_kek(config.key_encryption_key);
    if (!kek)
      return {errc::invalid_request,
              "CREDO_KEY_ENCRYPTION_KEY must be 32 bytes (64 hex digits or base64) when "
              "DATABASE_URL is set: signing keys are stored encrypted with it"};
    b.database = std::make_shared<persistence::pg_client>(*options);
    persistence::pg_store_options so;
    so.key_encryption_key = *kek;
    so.outbox = !config.kafka_brokers.empty();
    auto pg = persistence::make_pg_stores(b.database, so);
    b.stores.users = pg.users;
    b.stores.clients = persistence::make_cached_client_store(pg.clients);
    b.stores.consents = pg.consents;
    b.stores.audit = pg.audit;
    b.stores.keys = pg.keys;
    b.stores.outbox = pg.outbox;
  }
  if (!config.redis_url.empty()) {
    auto options = persistence::parse_redis_url(config.redis_url);
    if (!options)
      return {errc::invalid_request,
              "REDIS_URL must be redis://[[user]:password@]host:port[/db]"};
    b.redis = std::make_shared<persistence::redis_client>(*options);
    b.stores.sessions = persistence::make_redis_session_store(b.redis);
    b.stores.codes = persistence::make_redis_code_store(b.redis);
    b.stores.buckets = persistence::make_redis_bucket_store(b.redis);
    b.revocations = std::make_shared<persistence::revocation_mirror>(
      persistence::make_redis_revocation_store(b.redis));
    b.stores.revocations = b.revocations;
  }
  if (!config.kafka_brokers.empty()) {
    persistence::kafka_options ko;
    ko.brokers = config.kafka_brokers;
    auto producer = persistence::kafka_producer::make(ko);
    if (!producer)
      return {errc::invalid_request, "KAFKA_BROKERS: " + producer.description()};
    b.kafka = std::move(*producer);
  }
  return b;
}

status prepare_database(const backends& b) {
  if (!b.database)
    return ok();
  return persistence::migrate(*b.database);
}

}  // namespace credo::app
