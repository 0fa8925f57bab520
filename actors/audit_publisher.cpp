#include "actors/audit_publisher.hpp"

#include <algorithm>
#include <exception>
#include <limits>
#include <unordered_map>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "protocols/clock.hpp"
#include "protocols/log.hpp"

namespace credo::actors {
namespace {

// Self-message only: it never crosses a node, so it needs no type id.
using publish_tick_atom = caf::atom_constant<caf::atom("audpubtick")>;

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct publisher_state {
  std::shared_ptr<persistence::outbox_store> outbox;
  std::shared_ptr<persistence::kafka_producer> producer;
  std::shared_ptr<publisher_stats> stats;
  audit_publisher_options opt;
  milliseconds backoff{0};  // 0: the last round succeeded
  clock::time_point last_probe{};
  clock::time_point last_backlog_check{};
  clock::time_point next_prune{};  // the first prune comes with the first quiet round

  static inline const char* name = "audit_publisher";

  /// One round: pending -> publish -> mark_published. Returns the delay before the next round.
  milliseconds run_round() {
    if (opt.ready && !opt.ready())
      return opt.idle_interval;  // no schema yet: nothing to read, nothing failed
    auto rows = outbox->pending(opt.batch_size);
    if (!rows)
      return failed("outbox pending: " + rows.description(), false);
    auto now = clock::now();
    if (rows->empty()) {
      stats->backlog = 0;
      if (now - last_probe >= opt.probe_interval) {
        last_probe = now;
        stats->kafka_ok = static_cast<bool>(producer->probe(opt.probe_timeout));
      }
      succeeded();
      prune_if_due();
      return opt.idle_interval;
    }
    auto report = producer->publish(*rows, producer->delivery_bound());
    last_probe = clock::now();  // a publish tells as much as a probe
    if (!report.delivered.empty()) {
      if (auto marked = outbox->mark_published(report.delivered); !marked) {
        // Delivered but not marked: they go again (at least once, never lost).
        stats->kafka_ok = producer->healthy();
        return failed("outbox mark_published: " + marked.description(), false);
      }
      stats->published += static_cast<std::int64_t>(report.delivered.size());
      stats->last_latency_ms = unix_now_ms() - oldest_occurred_at(*rows, report.delivered);
    }
    stats->kafka_ok = report.complete() || producer->healthy();
    if (!report.complete())
      return failed("kafka: " + std::to_string(report.failed) + " of " +
                      std::to_string(rows->size()) + " events not acknowledged: " + report.error,
                    !report.delivered.empty());
    bool full = rows->size() >= opt.batch_size;
    if (full)
      refresh_backlog(static_cast<std::int64_t>(report.delivered.size()));
    else
      stats->backlog = 0;
    succeeded();
    if (full)
      return milliseconds{0};
    prune_if_due();  // not while draining a backlog
    return opt.idle_interval;
  }

  /// The earliest occurred_at among the delivered rows: the batch's worst latency.
  static std::int64_t oldest_occurred_at(const std::vector<persistence::outbox_entry>& rows,
                                         const std::vector<std::int64_t>& delivered) {
    std::unordered_map<std::int64_t, std::int64_t> at;
    at.reserve(rows.size());
    for (const auto& r : rows)
      at.emplace(r.id, r.event.occurred_at_ms);
    auto oldest = std::numeric_limits<std::int64_t>::max();
    for (auto id : delivered)
      if (auto it = at.find(id); it != at.end())
        oldest = std::min(oldest, it->second);
    return oldest == std::numeric_limits<std::int64_t>::max() ? unix_now_ms() : oldest;
  }

  /// Deletes published rows past prune_after, once per prune_interval, or in the next quiet
  /// round again while a call deletes a full prune_limit. A failure only costs a log line: the
  /// rows are deleted by a later call.
  void prune_if_due() {
    auto now = clock::now();
    if (opt.prune_limit == 0 || now < next_prune)
      return;
    next_prune = now + opt.prune_interval;
    auto n = outbox->prune_published(opt.prune_after, opt.prune_limit);
    if (!n) {
      log::warn("audit outbox prune failed",
                {{"component", "audit_publisher"}, {"error", n.description()}});
      return;
    }
    if (static_cast<std::size_t>(*n) >= opt.prune_limit)
      next_prune = now;  // more may be waiting
  }

  // Counting the outbox costs a query: at most once per second, otherwise an estimate.
  void refresh_backlog(std::int64_t just_published) {
    auto now = clock::now();
    if (now - last_backlog_check >= std::chrono::seconds{1}) {
      last_backlog_check = now;
      if (auto n = outbox->backlog()) {
        stats->backlog = *n;
        return;
      }
    }
    auto cur = stats->backlog.load();
    stats->backlog = std::max<std::int64_t>(0, cur - just_published);
  }

  /// Counts a failed round and returns the backoff before the next. A round that still
  /// delivered something (`progress`) retries after the shortest backoff, so that one row that
  /// keeps failing does not slow down the rows behind it.
  milliseconds failed(const std::string& what, bool progress) {
    stats->set_last_error(what);
    refresh_backlog(0);
    ++stats->failures;  // last: a reader that sees the count sees the error and backlog too
    backoff = backoff.count() == 0 || progress ? opt.backoff_min
                                               : std::min(backoff * 2, opt.backoff_max);
    log::warn("audit publish failed",
              {{"component", "audit_publisher"}, {"error", what},
               {"retry_in_ms", backoff.count()}, {"backlog", stats->backlog.load()}});
    return backoff;
  }

  void succeeded() {
    stats->last_success_ms = unix_now_ms();
    if (backoff.count() != 0) {
      log::info("audit publish recovered", {{"component", "audit_publisher"},
                                             {"failures", stats->failures.load()}});
      backoff = milliseconds{0};
    }
  }
};

caf::behavior audit_publisher(caf::stateful_actor<publisher_state>* self,
                              std::shared_ptr<persistence::outbox_store> outbox,
                              std::shared_ptr<persistence::kafka_producer> producer,
                              std::shared_ptr<publisher_stats> stats,
                              audit_publisher_options opt) {
  auto& st = self->state;
  st.outbox = std::move(outbox);
  st.producer = std::move(producer);
  st.stats = std::move(stats);
  st.opt = opt;
  st.opt.batch_size = std::max<std::size_t>(st.opt.batch_size, 1);
  self->send(self, publish_tick_atom::value);
  return {
    [self](publish_tick_atom) {
      milliseconds next;
      try {
        next = self->state.run_round();
      } catch (const std::exception& e) {  // a store adapter that let one escape
        next = self->state.failed(std::string{"exception: "} + e.what(), false);
      }
      if (next.count() == 0)
        self->send(self, publish_tick_atom::value);
      else
        self->delayed_send(self, next, publish_tick_atom::value);
    },
  };
}

}  // namespace

caf::actor spawn_audit_publisher(caf::actor_system& sys,
                                 std::shared_ptr<persistence::outbox_store> outbox,
                                 std::shared_ptr<persistence::kafka_producer> producer,
                                 std::shared_ptr<publisher_stats> stats,
                                 audit_publisher_options options) {
  return sys.spawn<caf::detached>(audit_publisher, std::move(outbox), std::move(producer),
                                  std::move(stats), options);
}

}  // namespace credo::actors
