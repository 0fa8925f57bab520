#pragma once
// The node's event metrics, recorded where things happen (entities, fronts, the cluster) in
// prometheus-cpp objects. GET /metrics (http/inline.cpp) exports them with the gauges it reads
// at scrape time from the supervisors, the publisher and the limiter. No prometheus header
// leaks from here: callers only see these methods.
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "persistence/stores.hpp"

namespace prometheus {
struct MetricFamily;
}

namespace credo::actors {

/// Where a grant's consent was checked and refused (or could not be checked).
enum class consent_stage : std::uint8_t { authorize, code_exchange, refresh };

class node_metrics {
 public:
  node_metrics();
  ~node_metrics();
  node_metrics(const node_metrics&) = delete;
  node_metrics& operator=(const node_metrics&) = delete;

  void refresh_token_reuse();
  /// `error`: the consent check could not be made (store down, timeout); else consent missing.
  void consent_gating_failure(consent_stage stage, bool error);
  /// A token revocation or cut-off this node made: `stored` false when the durable write failed.
  void revocation_write(bool stored);
  /// Revocations from a peer arrived `seconds` after the peer sent them.
  void revocation_propagated(double seconds);
  /// One answered HTTP request. `route` is the route's pattern ("unmatched" for none);
  /// `client` the authenticated OAuth client's id, empty if none. Client ids beyond the first
  /// max_client_labels are counted as "other", so a label set stays bounded.
  void http_request(std::string_view route, std::string_view method, int status,
                    std::string_view client, double seconds);
  static constexpr std::size_t max_client_labels = 256;

  std::vector<prometheus::MetricFamily> collect() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// The revocation store `inner`, counting each write (and failed write) in `metrics`.
std::shared_ptr<persistence::revocation_store>
count_revocations(std::shared_ptr<persistence::revocation_store> inner,
                  std::shared_ptr<node_metrics> metrics);

}  // namespace credo::actors
