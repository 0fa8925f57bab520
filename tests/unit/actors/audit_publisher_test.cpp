// The audit publisher against librdkafka's mock cluster (in process, reached over TCP), read back
// with a real consumer. Also the kafka_producer's own contract (broker list, bounded failure).
#include <caf/all.hpp>
#include <gtest/gtest.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "actors/audit_publisher.hpp"
#include "persistence/kafka_producer.hpp"
#include "protocols/clock.hpp"
#include "protocols/crypto.hpp"

namespace {

using namespace credo;
using namespace std::chrono_literals;
using persistence::audit_event;
using persistence::outbox_entry;

constexpr const char* audit_topic = "credo.audit.events";
constexpr const char* consent_topic = "credo.consent.events";
constexpr int broker_count = 3;

/// Polls `pred` until it holds or `limit` passes.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline)
      return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

/// A Kafka cluster of three brokers with Credo's topics, as tests/infra/kafka_mock_broker runs.
class mock_cluster {
 public:
  mock_cluster() {
    char err[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "2", err, sizeof err);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk_)
      throw std::runtime_error(err);
    mc_ = rd_kafka_mock_cluster_new(rk_, broker_count);
    if (!mc_)
      throw std::runtime_error("rd_kafka_mock_cluster_new failed");
    for (const char* topic : {audit_topic, consent_topic})
      if (rd_kafka_mock_topic_create(mc_, topic, 3, 3) != RD_KAFKA_RESP_ERR_NO_ERROR)
        throw std::runtime_error("rd_kafka_mock_topic_create failed");
  }
  ~mock_cluster() {
    rd_kafka_mock_cluster_destroy(mc_);
    rd_kafka_destroy(rk_);
  }
  mock_cluster(const mock_cluster&) = delete;
  mock_cluster& operator=(const mock_cluster&) = delete;

  std::string bootstrap() const { return rd_kafka_mock_cluster_bootstraps(mc_); }
  void set_all(bool up) {
    for (int id = 1; id <= broker_count; ++id)
      ASSERT_EQ(up ? rd_kafka_mock_broker_set_up(mc_, id) : rd_kafka_mock_broker_set_down(mc_, id),
                RD_KAFKA_RESP_ERR_NO_ERROR);
  }

 private:
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_mock_cluster_t* mc_ = nullptr;
};

/// An outbox in a vector behind a mutex, with a switch that makes every call fail.
class test_outbox : public persistence::outbox_store {
 public:
  void add(const std::string& topic, audit_event e) {
    std::lock_guard guard{mtx_};
    rows_.push_back({next_id_++, topic, std::move(e)});
  }
  result<std::vector<outbox_entry>> pending(std::size_t limit) override {
    std::lock_guard guard{mtx_};
    ++pending_calls;
    if (failing)
      return {errc::temporarily_unavailable, "injected"};
    std::vector<outbox_entry> out;
    for (const auto& r : rows_) {
      if (out.size() >= limit)
        break;
      if (!published_.count(r.id))
        out.push_back(r);
    }
    return out;
  }
  status mark_published(const std::vector<std::int64_t>& ids) override {
    std::lock_guard guard{mtx_};
    if (failing)
      return {errc::temporarily_unavailable, "injected"};
    auto now = std::chrono::steady_clock::now();
    for (auto id : ids)
      published_.emplace(id, now);
    return ok();
  }
  result<std::int64_t> backlog() override {
    std::lock_guard guard{mtx_};
    if (failing)
      return {errc::temporarily_unavailable, "injected"};
    return static_cast<std::int64_t>(
      std::count_if(rows_.begin(), rows_.end(), [&](auto& r) { return !published_.count(r.id); }));
  }
  result<std::int64_t> prune_published(std::chrono::seconds older_than,
                                       std::size_t limit) override {
    std::lock_guard guard{mtx_};
    ++prune_calls;
    if (failing)
      return {errc::temporarily_unavailable, "injected"};
    auto cutoff = std::chrono::steady_clock::now() - older_than;
    std::int64_t n = 0;
    for (auto it = rows_.begin(); it != rows_.end() && static_cast<std::size_t>(n) < limit;) {
      auto p = published_.find(it->id);
      if (p != published_.end() && p->second < cutoff) {
        it = rows_.erase(it);
        ++n;
      } else {
        ++it;
      }
    }
    return n;
  }
  /// Rows ever marked published (pruned ones included).
  std::size_t published_count() const {
    std::lock_guard guard{mtx_};
    return published_.size();
  }
  /// Rows in the outbox (pruned ones gone).
  std::size_t size() const {
    std::lock_guard guard{mtx_};
    return rows_.size();
  }
  /// topic -> event ids of every row.
  std::map<std::string, std::set<std::string>> keys() const {
    std::lock_guard guard{mtx_};
    std::map<std::string, std::set<std::string>> out;
    for (const auto& r : rows_)
      out[r.topic].insert(r.event.event_id);
    return out;
  }

  std::atomic<bool> failing{false};
  std::atomic<int> pending_calls{0};
  std::atomic<int> prune_calls{0};

 private:
  mutable std::mutex mtx_;
  std::vector<outbox_entry> rows_;
  std::map<std::int64_t, std::chrono::steady_clock::time_point> published_;  // id -> when
  std::int64_t next_id_ = 1;
};

audit_event make_event(const std::string& type, int i) {
  audit_event e;
  e.event_id = protocols::uuid_v4();
  e.type = type;
  e.occurred_at_ms = unix_now_ms();
  e.subject = "user-" + std::to_string(i);
  e.client_id = i % 2 ? "web" : "";
  e.request_id = "req-" + std::to_string(i);
  e.node = "test";
  e.data_json = R"({"n":)" + std::to_string(i) + "}";
  return e;
}

struct consumed {
  std::string topic;
  std::string key;
  std::string value;
};

/// Reads both topics from the beginning until every expected (topic, key) was seen or `limit`
/// passes; returns every message read (duplicates included).
std::vector<consumed> consume(const std::string& bootstrap,
                              const std::map<std::string, std::set<std::string>>& expected,
                              std::chrono::milliseconds limit) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (auto [k, v] : {std::pair{"bootstrap.servers", bootstrap.c_str()},
                      std::pair{"group.id", "audit-publisher-test"},
                      std::pair{"enable.auto.commit", "false"}, std::pair{"log_level", "2"}})
    EXPECT_EQ(rd_kafka_conf_set(conf, k, v, err, sizeof err), RD_KAFKA_CONF_OK) << err;
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  EXPECT_NE(rk, nullptr) << err;
  if (!rk)
    return {};
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(6);
  for (const char* topic : {audit_topic, consent_topic})
    for (int p = 0; p < 3; ++p)
      rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  EXPECT_EQ(rd_kafka_assign(rk, parts), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(parts);

  std::vector<consumed> out;
  auto missing = expected;
  auto left = [&] {
    std::size_t n = 0;
    for (const auto& [t, keys] : missing)
      n += keys.size();
    return n;
  };
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (left() > 0 && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (!m)
      continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      consumed c{rd_kafka_topic_name(m->rkt),
                 std::string(static_cast<const char*>(m->key), m->key_len),
                 std::string(static_cast<const char*>(m->payload), m->len)};
      missing[c.topic].erase(c.key);
      out.push_back(std::move(c));
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return out;
}

persistence::kafka_options options_for(const std::string& brokers) {
  persistence::kafka_options opt;
  opt.brokers = brokers;
  return opt;
}

/// Distinct keys per topic.
std::map<std::string, std::set<std::string>> keys_of(const std::vector<consumed>& msgs) {
  std::map<std::string, std::set<std::string>> out;
  for (const auto& m : msgs)
    out[m.topic].insert(m.key);
  return out;
}

struct audit_publisher_test : ::testing::Test {
  audit_publisher_test() : sys(cfg) {
    outbox = std::make_shared<test_outbox>();
    stats = std::make_shared<actors::publisher_stats>();
    persistence::kafka_options opt;
    opt.brokers = kafka.bootstrap();
    opt.message_timeout = 1000ms;  // an outage shows within about two seconds
    auto p = persistence::kafka_producer::make(opt);
    if (!p)
      throw std::runtime_error(p.description());
    producer = *p;
  }
  ~audit_publisher_test() override {
    if (publisher)
      caf::anon_send_exit(publisher, caf::exit_reason::user_shutdown);
  }

  void start(actors::audit_publisher_options opt = {}) {
    publisher = actors::spawn_audit_publisher(sys, outbox, producer, stats, opt);
  }

  // Declared first: outlives the producer, which flushes against it on destruction.
  mock_cluster kafka;
  std::shared_ptr<test_outbox> outbox;
  std::shared_ptr<actors::publisher_stats> stats;
  std::shared_ptr<persistence::kafka_producer> producer;
  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::actor publisher;
};

TEST_F(audit_publisher_test, delivers_every_event_keyed_by_event_id_and_marks_it_published) {
  // More than two batches of 500, to both topics.
  constexpr int n = 1100;
  for (int i = 0; i < n; ++i)
    outbox->add(i % 5 == 0 ? consent_topic : audit_topic,
                make_event(i % 5 == 0 ? "consent.granted" : "user.login", i));
  start();
  ASSERT_TRUE(eventually([&] { return outbox->published_count() == n; }, 20s))
    << outbox->published_count() << " of " << n << " marked; last error: " << stats->last_error();
  // The counter is raised just after the rows are marked: await it rather than race it.
  EXPECT_TRUE(eventually([&] { return stats->published.load() == n; }, 5s)) << stats->published.load();
  EXPECT_TRUE(stats->kafka_ok.load());
  EXPECT_EQ(stats->failures.load(), 0);
  EXPECT_TRUE(eventually([&] { return stats->backlog.load() == 0; }, 5s));
  EXPECT_GE(stats->last_latency_ms.load(), 0);

  auto expected = outbox->keys();
  auto msgs = consume(kafka.bootstrap(), expected, 20s);
  EXPECT_EQ(keys_of(msgs), expected);
  for (const auto& m : msgs) {
    auto j = nlohmann::json::parse(m.value, nullptr, false);
    ASSERT_TRUE(j.is_object()) << m.value;
    EXPECT_EQ(j.value("event_id", ""), m.key);
    EXPECT_EQ(j.value("node", ""), "test");
    EXPECT_TRUE(j.contains("occurred_at") && j["data"].is_object() && j.contains("ip"));
    EXPECT_TRUE(j["ip"].is_null());  // empty fields are null, as API.md shows them
    EXPECT_EQ(j.value("type", ""), m.topic == consent_topic ? "consent.granted" : "user.login");
  }

  // An event added to an idle outbox is published promptly (the budget is 100 ms to Kafka; the
  // bound here only catches a publisher that waits for something else).
  auto before = std::chrono::steady_clock::now();
  outbox->add(audit_topic, make_event("user.logout", n));
  ASSERT_TRUE(eventually([&] { return outbox->published_count() == n + 1; }, 5s));
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
    std::chrono::steady_clock::now() - before);
  EXPECT_LT(took, 1000ms);
  std::printf("idle outbox to acknowledged: %lld ms\n", static_cast<long long>(took.count()));
}

TEST_F(audit_publisher_test, an_outage_publishes_nothing_and_recovery_publishes_everything) {
  outbox->add(audit_topic, make_event("user.login", 0));
  start();
  ASSERT_TRUE(eventually([&] { return outbox->published_count() == 1; }, 10s))
    << stats->last_error();
  ASSERT_TRUE(stats->kafka_ok.load());

  kafka.set_all(false);
  constexpr int n = 60;
  for (int i = 1; i <= n; ++i)
    outbox->add(i % 3 == 0 ? consent_topic : audit_topic, make_event("user.login", i));
  // Two failed rounds: the first attempt timed out, and so did a retry.
  ASSERT_TRUE(eventually([&] { return stats->failures.load() >= 2; }, 20s))
    << "failures: " << stats->failures.load();
  EXPECT_FALSE(stats->kafka_ok.load());
  EXPECT_FALSE(producer->healthy());
  EXPECT_FALSE(producer->health().last_error.empty());
  EXPECT_EQ(outbox->published_count(), 1u) << "marked published while every broker was down";
  EXPECT_EQ(stats->backlog.load(), n);
  EXPECT_EQ(stats->published.load(), 1);
  EXPECT_FALSE(stats->last_error().empty());

  // Recovery is noticed within about a second (backoff at most 1 s, librdkafka's reconnect
  // backoff at most 1 s, and a round in flight delivers as soon as a broker answers).
  kafka.set_all(true);
  auto up = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return outbox->published_count() > 1u; }, 30s))
    << stats->last_error();
  auto first_progress = std::chrono::duration_cast<std::chrono::milliseconds>(
    std::chrono::steady_clock::now() - up);
  std::printf("brokers up to first publish: %lld ms\n",
              static_cast<long long>(first_progress.count()));
  EXPECT_LT(first_progress, 2500ms);
  ASSERT_TRUE(eventually([&] { return outbox->published_count() == n + 1u; }, 30s))
    << outbox->published_count() << " of " << n + 1 << " marked; last error: "
    << stats->last_error();
  EXPECT_TRUE(eventually([&] { return stats->kafka_ok.load(); }, 5s));
  EXPECT_TRUE(producer->healthy());

  auto expected = outbox->keys();
  auto msgs = consume(kafka.bootstrap(), expected, 20s);
  // At least once: every event arrived; a duplicate may have, and only of a published event.
  EXPECT_EQ(keys_of(msgs), expected);
  EXPECT_GE(msgs.size(), static_cast<std::size_t>(n + 1));
}

TEST_F(audit_publisher_test, store_errors_are_retried_until_everything_is_published) {
  outbox->failing = true;
  constexpr int n = 20;
  for (int i = 0; i < n; ++i)
    outbox->add(audit_topic, make_event("user.login", i));
  start();
  ASSERT_TRUE(eventually([&] { return stats->failures.load() >= 2; }, 10s));
  EXPECT_EQ(stats->published.load(), 0);
  EXPECT_NE(stats->last_error().find("injected"), std::string::npos) << stats->last_error();
  outbox->failing = false;
  ASSERT_TRUE(eventually([&] { return outbox->published_count() == n; }, 10s))
    << stats->last_error();
  auto expected = outbox->keys();
  EXPECT_EQ(keys_of(consume(kafka.bootstrap(), expected, 20s)), expected);
}

TEST_F(audit_publisher_test, the_backoff_stays_at_a_second_so_recovery_is_prompt) {
  outbox->add(audit_topic, make_event("user.login", 0));
  start();  // default options
  // Connected to the brokers first, so that only the backoff is measured.
  ASSERT_TRUE(eventually([&] { return outbox->published_count() == 1u; }, 10s))
    << stats->last_error();
  outbox->failing = true;
  outbox->add(audit_topic, make_event("user.login", 1));
  // Six failures: 100, 200, 400, 800 ms, then 1 s each (doubling on, 3.2 s would follow).
  ASSERT_TRUE(eventually([&] { return stats->failures.load() >= 6; }, 15s))
    << "failures: " << stats->failures.load();
  auto since = std::chrono::steady_clock::now();
  outbox->failing = false;
  ASSERT_TRUE(eventually([&] { return outbox->published_count() == 2u; }, 10s))
    << stats->last_error();
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
    std::chrono::steady_clock::now() - since);
  std::printf("store recovered to published: %lld ms\n", static_cast<long long>(took.count()));
  EXPECT_LT(took, 1500ms);
}

TEST_F(audit_publisher_test, waits_without_failing_until_ready) {
  // Before migrations the outbox table is missing: every read would fail.
  outbox->failing = true;
  constexpr int n = 5;
  for (int i = 0; i < n; ++i)
    outbox->add(audit_topic, make_event("user.login", i));
  std::atomic<bool> ready{false};
  actors::audit_publisher_options opt;
  opt.ready = [&ready] { return ready.load(); };
  start(opt);
  std::this_thread::sleep_for(300ms);  // 15 idle intervals
  EXPECT_EQ(outbox->pending_calls.load(), 0);
  EXPECT_EQ(outbox->prune_calls.load(), 0);
  EXPECT_EQ(stats->failures.load(), 0);
  EXPECT_EQ(stats->published.load(), 0);
  EXPECT_TRUE(stats->last_error().empty()) << stats->last_error();

  outbox->failing = false;
  ready = true;
  ASSERT_TRUE(eventually([&] { return outbox->published_count() == n; }, 10s))
    << stats->last_error();
  EXPECT_EQ(stats->failures.load(), 0);
}

TEST_F(audit_publisher_test, latency_is_that_of_the_oldest_event_of_the_batch) {
  auto old = make_event("user.login", 0);
  old.occurred_at_ms = unix_now_ms() - 60000;  // waited a minute (an outage)
  outbox->add(audit_topic, old);
  outbox->add(audit_topic, make_event("user.login", 1));
  outbox->add(audit_topic, make_event("user.login", 2));
  start();
  ASSERT_TRUE(eventually([&] { return outbox->published_count() == 3u; }, 10s))
    << stats->last_error();
  ASSERT_TRUE(eventually([&] { return stats->published.load() == 3; }, 5s)) << "not one batch";
  if (stats->failures.load() > 0)  // a delivery timed out under load: the batch was split
    GTEST_SKIP() << "the mock broker timed out a delivery; the batch was not published whole";
  EXPECT_GE(stats->last_latency_ms.load(), 60000);
  EXPECT_LT(stats->last_latency_ms.load(), 70000);
}

TEST_F(audit_publisher_test, prunes_published_rows_once_per_interval_and_catches_up) {
  constexpr int n = 10;
  for (int i = 0; i < n; ++i)
    outbox->add(audit_topic, make_event("user.login", i));
  actors::audit_publisher_options opt;
  opt.prune_after = std::chrono::seconds{0};
  opt.prune_limit = 3;
  opt.prune_interval = std::chrono::hours{1};
  start(opt);
  ASSERT_TRUE(eventually([&] { return outbox->published_count() == n; }, 10s))
    << stats->last_error();
  // 3 + 3 + 3 + 1 in consecutive rounds; the short call ends the catching up.
  ASSERT_TRUE(eventually([&] { return outbox->size() == 0u; }, 5s)) << outbox->size() << " left";
  std::this_thread::sleep_for(200ms);  // 10 idle rounds
  EXPECT_EQ(outbox->prune_calls.load(), 4);
  EXPECT_EQ(stats->failures.load(), 0);
}

// -- kafka_producer -----------------------------------------------------------------------------

TEST(kafka_producer, refuses_a_bad_broker_list_naming_the_item) {
  for (const std::string bad : {"", "  ", "localhost", "localhost:", ":9092", "host:0",
                                "host:65536", "host:90x2", "a:1,,b:2", "a:1,", "a b:1", "::1:9092",
                                "[::1]", "[]:1"}) {
    persistence::kafka_options opt;
    opt.brokers = bad;
    auto p = persistence::kafka_producer::make(opt);
    ASSERT_FALSE(p) << "accepted \"" << bad << "\"";
    EXPECT_EQ(p.error(), errc::invalid_request);
    EXPECT_NE(p.description().find("KAFKA_BROKERS"), std::string::npos) << p.description();
    EXPECT_FALSE(persistence::validate_brokers(bad));
  }
  auto p = persistence::kafka_producer::make(options_for("localhost"));
  EXPECT_NE(p.description().find("\"localhost\""), std::string::npos) << p.description();
  for (const std::string good : {"127.0.0.1:9092", "a:1, b:2,c:65535", "[::1]:9092",
                                 "PLAINTEXT://kafka-0.kafka:9092"})
    EXPECT_TRUE(persistence::validate_brokers(good)) << good;
}

TEST(kafka_producer, refuses_a_property_librdkafka_rejects) {
  persistence::kafka_options opt;
  opt.brokers = "127.0.0.1:9092";
  opt.properties = {{"no.such.property", "1"}};
  auto p = persistence::kafka_producer::make(opt);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error(), errc::invalid_request);
  EXPECT_NE(p.description().find("no.such.property"), std::string::npos) << p.description();
}

TEST(kafka_producer, fails_within_its_bound_when_no_broker_answers) {
  persistence::kafka_options opt;
  opt.brokers = "127.0.0.1:1";  // nothing listens on port 1
  opt.message_timeout = 300ms;
  auto p = persistence::kafka_producer::make(opt);
  ASSERT_TRUE(p) << p.description();
  auto& producer = **p;
  EXPECT_FALSE(producer.healthy());  // nothing learnt yet
  std::vector<outbox_entry> rows;
  for (int i = 0; i < 3; ++i)
    rows.push_back({i + 1, audit_topic, make_event("user.login", i)});
  auto start = std::chrono::steady_clock::now();
  auto report = producer.publish(rows, producer.delivery_bound());
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(report.delivered.empty());
  EXPECT_EQ(report.failed, 3u);
  EXPECT_FALSE(report.error.empty());
  EXPECT_LE(took, producer.delivery_bound() + 500ms);
  EXPECT_FALSE(producer.healthy());
  EXPECT_FALSE(producer.probe(200ms));
  EXPECT_FALSE(producer.health().last_error.empty());
  start = std::chrono::steady_clock::now();
  p = persistence::kafka_producer::make(options_for("127.0.0.1:1"));  // destroys the first
  EXPECT_LE(std::chrono::steady_clock::now() - start, opt.message_timeout + 1s);
}

TEST(kafka_producer, a_publish_that_times_out_returns_and_its_messages_are_dropped_on_destroy) {
  persistence::kafka_options opt;
  opt.brokers = "127.0.0.1:1";
  opt.message_timeout = 1000ms;
  auto p = persistence::kafka_producer::make(opt);
  ASSERT_TRUE(p) << p.description();
  std::vector<outbox_entry> rows;
  for (int i = 0; i < 3; ++i)
    rows.push_back({i + 1, audit_topic, make_event("user.login", i)});
  for (int round = 0; round < 2; ++round) {  // the second finds the first's messages in flight
    auto start = std::chrono::steady_clock::now();
    auto report = (*p)->publish(rows, 50ms);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms);
    EXPECT_TRUE(report.delivered.empty());
    EXPECT_EQ(report.failed, 3u);
    EXPECT_NE(report.error.find("unanswered"), std::string::npos) << report.error;
  }
  auto start = std::chrono::steady_clock::now();
  p = persistence::kafka_producer::make(options_for("127.0.0.1:1"));  // destroys the first
  EXPECT_LE(std::chrono::steady_clock::now() - start, opt.message_timeout + 1s);
}

TEST(kafka_producer, probe_reports_a_reachable_cluster) {
  mock_cluster kafka;
  auto p = persistence::kafka_producer::make(options_for(kafka.bootstrap()));
  ASSERT_TRUE(p) << p.description();
  EXPECT_TRUE((*p)->probe(5s)) << (*p)->health().last_error;
  EXPECT_TRUE((*p)->healthy());
  EXPECT_GT((*p)->health().checked_at_ms, 0);
}

}  // namespace
