#pragma once
// The Credo HTTP API: maps every route of API.md to a handler. Cheap, stateless routes and the
// introspection fast path run inline on the I/O thread; everything that touches an entity goes
// to a pool of front actors, which talk to the entity registries and answer through the
// responder.
#include <chrono>
#include <memory>
#include <string>

#include <caf/fwd.hpp>

#include "actors/context.hpp"
#include "actors/entities.hpp"
#include "cluster/gate.hpp"
#include "cluster/membership.hpp"
#include "cluster/remote_calls.hpp"
#include "http/message.hpp"
#include "http/rate_limits.hpp"
#include "protocols/result.hpp"

namespace credo::http {

/// Cluster mode: who owns which entity key, the membership actor (broadcasts) and the view
/// /admin/cluster shows. All null on a single node.
struct cluster_handles {
  std::shared_ptr<const cluster::ownership> ownership;
  std::shared_ptr<const cluster::cluster_status> status;
  std::shared_ptr<cluster::remote_calls> in_flight;
  std::shared_ptr<const cluster::gate_state> gate;  // messages from strangers, dropped
  caf::actor membership;
};

struct service_options {
  std::string admin_token;
  std::string version = "0.1.0";
  int front_actors = 4;
  std::chrono::milliseconds deadline{std::chrono::seconds{5}};  // per entity request
  std::size_t token_cache_capacity = 100000;
  cluster_handles cluster;
  /// credod --enable-fault-injection: POST /admin/faults/crash exists (tests only).
  bool fault_injection = false;
  /// Rate limits, lockout and trusted proxies (docs/decisions/0011-rate-limits.md).
  rate_limit_config rate_limits;
};

/// Loads the signing keys from the key store into ctx.keys, creating the first key if none
/// exists. Call once at start, before serving.
status load_signing_keys(const actors::node_context& ctx);

class service {
 public:
  service(caf::actor_system& sys, actors::context_ptr ctx, actors::entity_handles entities,
          service_options options);
  ~service();
  service(const service&) = delete;
  service& operator=(const service&) = delete;

  /// The server's entry point; thread-safe.
  void handle(request&& req, responder respond);

  /// Stops the front actors (after the server has stopped).
  void shutdown();

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace credo::http
