#pragma once
// The PostgreSQL schema as versioned migrations compiled into the binary. Every node runs
// migrate() at start; the migrations are applied once, in order, whichever node gets there first.
#include <string_view>
#include <vector>

#include "persistence/pg_client.hpp"

namespace credo::persistence {

struct migration {
  int version;  // increasing, never reused; a released migration is never edited
  std::string_view name;
  std::string_view sql;
};

/// Every migration, oldest first.
const std::vector<migration>& migrations();

/// Applies the missing migrations in one transaction under an advisory lock and records each in
/// schema_migrations, so nodes starting together neither race nor apply a version twice.
status migrate(pg_client& pg);

}  // namespace credo::persistence
