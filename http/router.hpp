#pragma once
// Routing table: method + path pattern ("/auth/sessions/{id}") to a route id.
#include <string>
#include <string_view>
#include <vector>

#include "http/message.hpp"

namespace credo::http {

class router {
 public:
  /// `pattern` segments in braces capture one non-empty path segment. Routes are added before
  /// the first resolve (match::pattern points into the table).
  void add(std::string method, std::string pattern, int route_id);

  struct match {
    enum class kind { found, not_found, method_not_allowed } result = kind::not_found;
    int route_id = -1;
    fields params;
    std::string allow;  // "GET, POST" for method_not_allowed
    std::string_view pattern;  // of the found route; valid while the router lives
  };
  match resolve(std::string_view method, std::string_view path) const;

 private:
  struct entry {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;
    int route_id;
  };
  std::vector<entry> entries_;
};

}  // namespace credo::http
