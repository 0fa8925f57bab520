// Memory per live session entity: opens N sessions through the registry (each an actor holding
// its record, plus the in-memory store's copy and indexes) and reports the RSS growth per
// session.   session_memory [N]   (default 100000)
#include <fstream>
#include <iostream>

#include <caf/all.hpp>
#include <unistd.h>

#include "actors/audit_log.hpp"
#include "actors/entities.hpp"
#include "persistence/memory_stores.hpp"
#include "protocols/messages.hpp"

namespace {

long rss_bytes() {
  std::ifstream statm{"/proc/self/statm"};
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace credo;
  int n = argc > 1 ? std::atoi(argv[1]) : 100000;
  caf::actor_system_config cfg;
  cfg.add_message_types<caf::id_block::credo_types>();
  cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  auto ctx = std::make_shared<actors::node_context>();
  ctx->node_id = "bench";
  ctx->tokens.issuer = "http://127.0.0.1:8080";
  ctx->stores = persistence::make_memory_stores(1000);
  ctx->keys = std::make_shared<protocols::key_ring>();
  ctx->keys->load({protocols::generate_signing_key(1)});
  ctx->audit = std::make_shared<actors::audit_log>("bench", ctx->stores.audit);
  auto entities = actors::spawn_entities(sys, ctx, {}, 1);
  auto before = rss_bytes();
  {
    caf::scoped_actor self{sys};
    constexpr int batch = 1000;
    for (int i = 0; i < n; i += batch) {
      for (int k = i; k < std::min(n, i + batch); ++k)
        self->send(entities.sessions,
                   protocols::session_open{"sid-" + std::to_string(k), "user-" + std::to_string(k),
                                           "credo", "openid profile", "bench", {"", "127.0.0.1"}});
      for (int k = i; k < std::min(n, i + batch); ++k)
        self->receive([](protocols::token_grant&) {}, [](caf::error& e) {
          std::cerr << "open failed: " << caf::to_string(e) << '\n';
        });
    }
  }
  auto after = rss_bytes();
  std::cout << "live session actors: " << entities.session_stats->live.load() << '\n'
            << "rss growth: " << (after - before) / (1024 * 1024) << " MiB\n"
            << "bytes per live session (actor + store copy + indexes): "
            << (after - before) / std::max(1, n) << '\n';
  credo::actors::stop_entities(entities);
}
