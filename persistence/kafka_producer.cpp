#include "persistence/kafka_producer.hpp"

#include <algorithm>
#include <cctype>
#include <mutex>
#include <unordered_set>

#include <librdkafka/rdkafka.h>
#include <nlohmann/json.hpp>

#include "persistence/audit_json.hpp"
#include "protocols/clock.hpp"
#include "protocols/log.hpp"

namespace credo::persistence {
namespace {

std::string trim(std::string_view s) {
  auto b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos)
    return {};
  auto e = s.find_last_not_of(" \t");
  return std::string{s.substr(b, e - b + 1)};
}

bool valid_port(std::string_view p) {
  if (p.empty() || p.size() > 5 ||
      !std::all_of(p.begin(), p.end(), [](unsigned char c) { return std::isdigit(c); }))
    return false;
  auto n = std::stoi(std::string{p});
  return n >= 1 && n <= 65535;
}

bool valid_host(std::string_view h) {
  return !h.empty() && std::none_of(h.begin(), h.end(), [](unsigned char c) {
    return std::isspace(c) || c == '/' || c == ',' || c == '[' || c == ']';
  });
}

bool valid_broker(std::string_view item) {
  if (auto scheme = item.find("://"); scheme != std::string_view::npos)
    item.remove_prefix(scheme + 3);
  if (!item.empty() && item.front() == '[') {  // [v6]:port
    auto close = item.find(']');
    if (close == std::string_view::npos || close == 1 || close + 1 >= item.size() ||
        item[close + 1] != ':')
      return false;
    return valid_port(item.substr(close + 2));
  }
  auto colon = item.rfind(':');
  if (colon == std::string_view::npos)
    return false;
  auto host = item.substr(0, colon);
  return valid_host(host) && host.find(':') == std::string_view::npos &&
         valid_port(item.substr(colon + 1));
}

// Rows of one publish call; shared with the delivery reports, which may outlive the call.
struct batch_state {
  std::vector<std::int64_t> delivered;
  std::size_t outstanding = 0;
  std::string error;
};

// The opaque of one produced message.
struct message_ctx {
  std::shared_ptr<batch_state> batch;
  std::int64_t id = 0;
};

int clamp_ms(std::chrono::milliseconds d) {
  return static_cast<int>(std::clamp<std::int64_t>(d.count(), 0, 1'000'000'000));
}

}  // namespace

struct kafka_producer::impl {
  explicit impl(kafka_options o) : opt(std::move(o)) {}
  ~impl() { destroy_handle(opt.message_timeout); }

  kafka_options opt;

  // Guards rk and live; held by publish(), probe() and the destructor. Delivery reports run
  // inside rd_kafka_poll/flush, hence under this lock too.
  std::mutex op_mtx;
  rd_kafka_t* rk = nullptr;
  std::unordered_set<message_ctx*> live;  // handed to librdkafka, report not yet seen

  mutable std::mutex health_mtx;
  kafka_health health;

  /// A new handle configured from opt, or the reason librdkafka refused the configuration.
  result<rd_kafka_t*> create_handle() {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    auto set = [&](const std::string& k, const std::string& v) -> status {
      if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
        return {errc::invalid_request, "kafka option " + k + ": " + err};
      return ok();
    };
    auto backoff_max = std::max<std::int64_t>(opt.reconnect_backoff_max.count(), 1);
    auto message_timeout = std::max<std::int64_t>(opt.message_timeout.count(), 1);
    const std::pair<std::string, std::string> base[] = {
      {"bootstrap.servers", opt.brokers},
      {"client.id", opt.client_id},
      {"acks", "all"},
      {"enable.idempotence", "true"},
      {"linger.ms", std::to_string(std::max<std::int64_t>(opt.linger.count(), 0))},
      {"message.timeout.ms", std::to_string(message_timeout)},
      {"reconnect.backoff.ms", std::to_string(std::min<std::int64_t>(100, backoff_max))},
      {"reconnect.backoff.max.ms", std::to_string(backoff_max)},
      {"log.connection.close", "false"},
      {"log_level", "4"},
    };
    for (const auto& [k, v] : base)
      if (auto s = set(k, v); !s) {
        rd_kafka_conf_destroy(conf);
        return {s.error(), s.description()};
      }
    for (const auto& [k, v] : opt.properties)
      if (auto s = set(k, v); !s) {
        rd_kafka_conf_destroy(conf);
        return {s.error(), s.description()};
      }
    rd_kafka_conf_set_opaque(conf, this);
    rd_kafka_conf_set_dr_msg_cb(conf, &impl::on_delivery);
    rd_kafka_conf_set_error_cb(conf, &impl::on_error);
    rd_kafka_conf_set_log_cb(conf, &impl::on_log);
    rd_kafka_t* h = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!h) {
      rd_kafka_conf_destroy(conf);
      return {errc::invalid_request, std::string{"kafka producer: "} + err};
    }
    return h;
  }

  /// Waits up to `bound` for outstanding deliveries, drops the rest and destroys the handle.
  void destroy_handle(std::chrono::milliseconds bound) {
    if (rk) {
      rd_kafka_flush(rk, clamp_ms(bound));
      rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      rd_kafka_flush(rk, 100);  // serves the reports of the purged messages
      rd_kafka_destroy(rk);
      rk = nullptr;
    }
    for (auto* ctx : live)
      delete ctx;
    live.clear();
  }

  /// An idempotent producer that raised a fatal error can produce no more: start a fresh one.
  void replace_if_fatal() {
    char reason[512];
    if (rk && rd_kafka_fatal_error(rk, reason, sizeof reason) == RD_KAFKA_RESP_ERR_NO_ERROR)
      return;
    std::string why = rk ? reason : "no producer handle";
    log::error("kafka producer replaced", {{"component", "kafka"}, {"reason", why}});
    note_error(why);
    destroy_handle(std::chrono::milliseconds{0});
    if (auto h = create_handle())
      rk = *h;
  }

  void note_ok() {
    bool recovered = false;
    {
      std::lock_guard guard{health_mtx};
      recovered = !health.reachable;
      health.reachable = true;
      health.checked_at_ms = unix_now_ms();
      health.last_error.clear();
    }
    if (recovered)
      log::info("kafka reachable", {{"component", "kafka"}});
  }

  void note_error(const std::string& what) {
    bool lost = false;
    {
      std::lock_guard guard{health_mtx};
      lost = health.reachable || health.checked_at_ms == 0;
      health.reachable = false;
      health.checked_at_ms = unix_now_ms();
      health.last_error = what;
    }
    if (lost)
      log::warn("kafka unreachable", {{"component", "kafka"}, {"error", what}});
  }

  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<impl*>(opaque);
    auto* ctx = static_cast<message_ctx*>(m->_private);
    if (!ctx)
      return;
    auto& batch = *ctx->batch;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      batch.delivered.push_back(ctx->id);
      self->note_ok();
    } else {
      batch.error = rd_kafka_err2str(m->err);
      if (m->err != RD_KAFKA_RESP_ERR__PURGE_QUEUE && m->err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
        self->note_error("delivery: " + batch.error);
    }
    --batch.outstanding;
    self->live.erase(ctx);
    delete ctx;
  }

  static void on_error(rd_kafka_t*, int err, const char* reason, void* opaque) {
    auto* self = static_cast<impl*>(opaque);
    auto code = static_cast<rd_kafka_resp_err_t>(err);
    std::string why = reason ? reason : rd_kafka_err2str(code);
    // These mean that nothing can be delivered now; note_error logs the transition.
    if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || code == RD_KAFKA_RESP_ERR__FATAL ||
        code == RD_KAFKA_RESP_ERR__AUTHENTICATION) {
      self->note_error(why);
      return;
    }
    // A single connection failing is retried by librdkafka and repeats every reconnect: not
    // worth a line each time. Anything else (TLS, name resolution, ...) is logged.
    if (code != RD_KAFKA_RESP_ERR__TRANSPORT)
      log::warn("kafka error", {{"component", "kafka"}, {"code", rd_kafka_err2name(code)},
                                {"error", why}});
  }

  static void on_log(const rd_kafka_t*, int level, const char* fac, const char* buf) {
    std::string_view facility = fac ? fac : "";
    if (facility == "FAIL")  // connection failures: reported through on_error
      return;
    log::write(level <= 3 ? log::level::error : log::level::warn, "librdkafka",
               {{"component", "kafka"}, {"facility", facility}, {"detail", buf ? buf : ""}});
  }
};

status validate_brokers(const std::string& brokers) {
  if (trim(brokers).empty())
    return {errc::invalid_request, "KAFKA_BROKERS: empty broker list (expected host:port[,...])"};
  std::string_view rest = brokers;
  while (true) {
    auto comma = rest.find(',');
    auto item = trim(rest.substr(0, comma));
    if (item.empty())
      return {errc::invalid_request, "KAFKA_BROKERS: empty item in \"" + brokers + "\""};
    if (!valid_broker(item))
      return {errc::invalid_request,
              "KAFKA_BROKERS: \"" + item + "\" is not host:port (port 1..65535)"};
    if (comma == std::string_view::npos)
      break;
    rest.remove_prefix(comma + 1);
  }
  return ok();
}

result<std::shared_ptr<kafka_producer>> kafka_producer::make(kafka_options options) {
  if (auto s = validate_brokers(options.brokers); !s)
    return {s.error(), s.description()};
  auto p = std::make_unique<impl>(std::move(options));
  auto h = p->create_handle();
  if (!h)
    return {h.error(), h.description()};
  p->rk = *h;
  return std::shared_ptr<kafka_producer>(new kafka_producer(std::move(p)));
}

kafka_producer::kafka_producer(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

kafka_producer::~kafka_producer() {
  std::lock_guard guard{impl_->op_mtx};
  impl_->destroy_handle(impl_->opt.message_timeout);
}

std::chrono::milliseconds kafka_producer::delivery_bound() const {
  // librdkafka scans for timed-out messages about once a second.
  return impl_->opt.message_timeout + std::chrono::milliseconds{1500};
}

publish_report kafka_producer::publish(const std::vector<outbox_entry>& entries,
                                       std::chrono::milliseconds timeout) {
  publish_report out;
  if (entries.empty())
    return out;
  auto& p = *impl_;
  std::lock_guard guard{p.op_mtx};
  p.replace_if_fatal();
  if (!p.rk) {
    out.failed = entries.size();
    out.error = "no kafka producer";
    return out;
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto batch = std::make_shared<batch_state>();
  for (const auto& e : entries) {
    // Invalid UTF-8 (an ip or request id copied from a request) is replaced, not thrown on: a
    // row that can never be encoded would block the outbox.
    auto value =
      audit_event_json(e.event).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    auto* ctx = new message_ctx{batch, e.id};
    p.live.insert(ctx);
    ++batch->outstanding;
    auto err = rd_kafka_producev(
      p.rk, RD_KAFKA_V_TOPIC(e.topic.c_str()),
      RD_KAFKA_V_KEY(e.event.event_id.data(), e.event.event_id.size()),
      RD_KAFKA_V_VALUE(value.data(), value.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_OPAQUE(ctx), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {  // never enqueued: no report will come
      --batch->outstanding;
      p.live.erase(ctx);
      delete ctx;
      batch->error = std::string{"produce: "} + rd_kafka_err2str(err);
      if (err == RD_KAFKA_RESP_ERR__FATAL)
        break;
    }
  }
  while (batch->outstanding > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      break;
    rd_kafka_poll(p.rk, clamp_ms(std::min(left, std::chrono::milliseconds{100})));
  }
  out.delivered = batch->delivered;
  out.failed = entries.size() - out.delivered.size();
  out.error = batch->error;
  if (out.failed > 0 && out.error.empty())
    out.error = std::to_string(batch->outstanding) + " deliveries unanswered after " +
                std::to_string(timeout.count()) + " ms";
  return out;
}

status kafka_producer::probe(std::chrono::milliseconds timeout) {
  auto& p = *impl_;
  std::lock_guard guard{p.op_mtx};
  p.replace_if_fatal();
  if (!p.rk)
    return {errc::temporarily_unavailable, "no kafka producer"};
  rd_kafka_poll(p.rk, 0);  // pending error and delivery reports first
  const rd_kafka_metadata_t* md = nullptr;
  auto err = rd_kafka_metadata(p.rk, 0, nullptr, &md, clamp_ms(timeout));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::string why = std::string{"metadata: "} + rd_kafka_err2str(err);
    p.note_error(why);
    return {errc::temporarily_unavailable, why};
  }
  int brokers = md->broker_cnt;
  rd_kafka_metadata_destroy(md);
  if (brokers <= 0) {
    p.note_error("metadata: no brokers");
    return {errc::temporarily_unavailable, "metadata: no brokers"};
  }
  p.note_ok();
  return ok();
}

kafka_health kafka_producer::health() const {
  std::lock_guard guard{impl_->health_mtx};
  return impl_->health;
}

bool kafka_producer::healthy() const {
  std::lock_guard guard{impl_->health_mtx};
  return impl_->health.reachable;
}

}  // namespace credo::persistence
