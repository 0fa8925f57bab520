#pragma once
// Publishes audit outbox rows to Kafka (librdkafka, kept out of this header). The producer is
// idempotent with acks=all: a row counts as delivered only once every in-sync replica has it.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "persistence/stores.hpp"
#include "protocols/result.hpp"

namespace credo::persistence {

struct kafka_options {
  /// Bootstrap servers, "host:port[,host:port...]" (KAFKA_BROKERS); "[v6]:port" and a
  /// "proto://" prefix are accepted.
  std::string brokers;
  /// A message not acknowledged within this time fails (librdkafka message.timeout.ms).
  std::chrono::milliseconds message_timeout{5000};
  /// How long a message may wait to be batched with others (linger.ms).
  std::chrono::milliseconds linger{2};
  /// Upper bound of librdkafka's reconnect backoff, so that the producer notices a recovered
  /// cluster quickly (librdkafka's default is 10 s).
  std::chrono::milliseconds reconnect_backoff_max{1000};
  std::string client_id = "credo";
  /// Further librdkafka properties (security.protocol, sasl.*, ...), applied last.
  std::vector<std::pair<std::string, std::string>> properties;
};

/// errc::invalid_request naming the offending item unless `brokers` is a non-empty comma-separated
/// list of host:port (port 1..65535).
status validate_brokers(const std::string& brokers);

/// What the producer last learnt about the cluster.
struct kafka_health {
  bool reachable = false;          // false until the first delivery or probe succeeds
  std::int64_t checked_at_ms = 0;  // unix ms of that evidence; 0: none yet
  std::string last_error;          // empty while reachable
};

/// The outcome of one publish call. Rows not in `delivered` were not acknowledged (failed or still
/// unanswered at the deadline) and must stay in the outbox; they may still reach Kafka later, so
/// publishing them again gives at-least-once delivery (consumers deduplicate by event_id).
struct publish_report {
  std::vector<std::int64_t> delivered;  // outbox ids acknowledged by the brokers
  std::size_t failed = 0;               // rows not acknowledged
  std::string error;                    // the last error seen, if any
  bool complete() const { return failed == 0; }
};

/// Thread-safe: publish() and probe() are serialised internally (one caller at a time; they
/// block for at most their timeout); health() and healthy() never block on the network.
class kafka_producer {
 public:
  /// Checks the options and creates the librdkafka handle; it does not contact the brokers.
  /// errc::invalid_request for a bad broker list or a property librdkafka refuses.
  static result<std::shared_ptr<kafka_producer>> make(kafka_options options);

  /// Waits for outstanding deliveries at most message_timeout, then drops what is left (those
  /// rows stay unpublished in the outbox).
  ~kafka_producer();
  kafka_producer(const kafka_producer&) = delete;
  kafka_producer& operator=(const kafka_producer&) = delete;

  /// Produces every entry to its topic, key = event_id, value = the API.md JSON of the event, and
  /// waits for the delivery reports, at most `timeout`.
  publish_report publish(const std::vector<outbox_entry>& entries,
                         std::chrono::milliseconds timeout);

  /// A publish timeout by which every message normally has a final delivery report:
  /// message_timeout plus librdkafka's timeout scan granularity.
  std::chrono::milliseconds delivery_bound() const;

  /// Asks the cluster for metadata (bounded by `timeout`) and records the answer in health().
  status probe(std::chrono::milliseconds timeout);

  kafka_health health() const;
  bool healthy() const;

 private:
  struct impl;
  explicit kafka_producer(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace credo::persistence
