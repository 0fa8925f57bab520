#include "actors/metrics.hpp"

#include <atomic>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace credo::actors {
namespace {

using prometheus::Histogram;

// Request latencies from sub-millisecond introspection to multi-second timeouts.
const Histogram::BucketBoundaries http_buckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                  0.05,   0.1,   0.25,   0.5,   1,     2.5,
                                                  5,      10};
const Histogram::BucketBoundaries lag_buckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                 0.1,   0.25,   0.5,   1,    2.5,   5};

const char* stage_name(consent_stage s) {
  switch (s) {
    case consent_stage::authorize: return "authorize";
    case consent_stage::code_exchange: return "code_exchange";
    case consent_stage::refresh: return "refresh";
  }
  return "authorize";
}

class counted_revocations final : public persistence::revocation_store {
 public:
  counted_revocations(std::shared_ptr<persistence::revocation_store> inner,
                      std::shared_ptr<node_metrics> metrics)
    : inner_(std::move(inner)), metrics_(std::move(metrics)) {}

  status revoke_token(const std::string& jti, std::int64_t exp) override {
    return counted(inner_->revoke_token(jti, exp));
  }
  status add_cutoff(const std::string& user_id, const std::string& client_id,
                    const std::string& scope, std::int64_t cutoff) override {
    return counted(inner_->add_cutoff(user_id, client_id, scope, cutoff));
  }
  result<bool> is_token_revoked(const std::string& jti) override {
    return inner_->is_token_revoked(jti);
  }
  result<std::int64_t> cutoff(const std::string& user_id, const std::string& client_id,
                              const std::string& scope) override {
    return inner_->cutoff(user_id, client_id, scope);
  }
  result<persistence::revocation_snapshot> snapshot() override { return inner_->snapshot(); }

 private:
  status counted(status s) {
    metrics_->revocation_write(static_cast<bool>(s));
    return s;
  }
  std::shared_ptr<persistence::revocation_store> inner_;
  std::shared_ptr<node_metrics> metrics_;
};

}  // namespace

std::atomic<std::uint64_t> next_metrics_id{1};

struct node_metrics::impl {
  const std::uint64_t id = next_metrics_id.fetch_add(1);
  prometheus::Registry registry;
  prometheus::Counter& reuse =
    prometheus::BuildCounter()
      .Name("credo_refresh_token_reuse_total")
      .Help("Refresh tokens presented again after rotation (the family is revoked).")
      .Register(registry)
      .Add({});
  prometheus::Family<prometheus::Counter>& consent =
    prometheus::BuildCounter()
      .Name("credo_consent_gating_failures_total")
      .Help("Grants refused because consent was missing or withdrawn (reason=denied) or could "
            "not be checked (reason=error), per stage.")
      .Register(registry);
  prometheus::Counter& revocation_writes =
    prometheus::BuildCounter()
      .Name("credo_revocation_writes_total")
      .Help("Token revocations and cut-offs this node made.")
      .Register(registry)
      .Add({});
  prometheus::Counter& revocation_failures =
    prometheus::BuildCounter()
      .Name("credo_revocation_write_failures_total")
      .Help("Revocations this node could not write to the durable revocation store.")
      .Register(registry)
      .Add({});
  Histogram& propagation =
    prometheus::BuildHistogram()
      .Name("credo_revocation_propagation_lag_seconds")
      .Help("Time from a peer sending its revocations to this node applying them (includes "
            "clock skew between the nodes).")
      .Register(registry)
      .Add({}, lag_buckets);
  prometheus::Family<Histogram>& http =
    prometheus::BuildHistogram()
      .Name("credo_http_request_duration_seconds")
      .Help("Time from a parsed request to its answer, per route, method, status and "
            "authenticated OAuth client.")
      .Register(registry);

  std::mutex mtx;  // clients; the prometheus objects are thread-safe themselves
  std::unordered_set<std::string> clients;
  prometheus::Counter* consent_series[3][2] = {};

  impl() {
    // Every series a dashboard or alert reads exists from the start, at zero.
    for (auto s : {consent_stage::authorize, consent_stage::code_exchange, consent_stage::refresh})
      for (int e = 0; e < 2; ++e)
        consent_series[static_cast<int>(s)][e] =
          &consent.Add({{"stage", stage_name(s)}, {"reason", e ? "error" : "denied"}});
  }
};

node_metrics::node_metrics() : impl_(std::make_unique<impl>()) {}
node_metrics::~node_metrics() = default;

void node_metrics::refresh_token_reuse() { impl_->reuse.Increment(); }

void node_metrics::consent_gating_failure(consent_stage stage, bool error) {
  impl_->consent_series[static_cast<int>(stage)][error ? 1 : 0]->Increment();
}

void node_metrics::revocation_write(bool stored) {
  impl_->revocation_writes.Increment();
  if (!stored)
    impl_->revocation_failures.Increment();
}

void node_metrics::revocation_propagated(double seconds) {
  impl_->propagation.Observe(seconds < 0 ? 0 : seconds);
}

void node_metrics::http_request(std::string_view route, std::string_view method, int status,
                                std::string_view client, double seconds) {
  // Each thread keeps the series it has used: after warm-up a request costs one lookup in its
  // own table and the histogram's own lock. The key buffer is reused, so nothing allocates.
  thread_local std::unordered_map<std::string, Histogram*> mine;
  thread_local std::uint64_t owner = 0;
  thread_local std::string key;
  if (owner != impl_->id) {  // another node_metrics (tests make several): start afresh
    mine.clear();
    owner = impl_->id;
  }
  key.clear();
  key.append(route).append(1, ' ').append(method).append(1, ' ');
  key.append(std::to_string(status)).append(1, ' ').append(client);
  if (auto it = mine.find(key); it != mine.end())
    return it->second->Observe(seconds);
  Histogram* h = nullptr;
  {
    std::lock_guard guard{impl_->mtx};
    std::string_view label = client;
    if (!client.empty() && !impl_->clients.contains(std::string{client})) {
      if (impl_->clients.size() < max_client_labels)
        impl_->clients.emplace(client);
      else
        label = "other";
    }
    h = &impl_->http.Add({{"route", std::string{route}},
                          {"method", std::string{method}},
                          {"status", std::to_string(status)},
                          {"client", std::string{label}}},
                         http_buckets);
  }
  mine.emplace(key, h);
  h->Observe(seconds);
}

std::vector<prometheus::MetricFamily> node_metrics::collect() const {
  return impl_->registry.Collect();
}

std::shared_ptr<persistence::revocation_store>
count_revocations(std::shared_ptr<persistence::revocation_store> inner,
                  std::shared_ptr<node_metrics> metrics) {
  return std::make_shared<counted_revocations>(std::move(inner), std::move(metrics));
}

}  // namespace credo::actors
