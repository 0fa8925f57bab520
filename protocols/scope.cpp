#include "protocols/scope.hpp"

#include <algorithm>

namespace credo::protocols {

std::vector<std::string> split_scope(std::string_view scope) {
  std::vector<std::string> out;
  while (!scope.empty()) {
    auto sp = scope.find(' ');
    auto s = scope.substr(0, sp);
    if (!s.empty() && std::find(out.begin(), out.end(), s) == out.end())
      out.emplace_back(s);
    if (sp == std::string_view::npos)
      break;
    scope.remove_prefix(sp + 1);
  }
  return out;
}

std::string join_scope(const std::vector<std::string>& scopes) {
  std::string out;
  for (auto& s : scopes) {
    if (!out.empty())
      out.push_back(' ');
    out += s;
  }
  return out;
}

bool valid_scope_token(std::string_view s) {
  // RFC 6749 3.3: NQCHAR = %x21 / %x23-5B / %x5D-7E; we also bound the length.
  if (s.empty() || s.size() > 64)
    return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c <= 0x7E);
  });
}

}  // namespace credo::protocols
