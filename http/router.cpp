#include "http/router.hpp"

namespace credo::http {
namespace {

// "/a/b" → {"a", "b"}; "/" → {""}. Paths that do not start with '/' never match.
std::vector<std::string_view> split(std::string_view path) {
  std::vector<std::string_view> out;
  path.remove_prefix(1);
  for (;;) {
    std::size_t slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

bool is_capture(std::string_view seg) {
  return seg.size() >= 2 && seg.front() == '{' && seg.back() == '}';
}

bool matches(const std::vector<std::string>& pattern, const std::vector<std::string_view>& path) {
  if (pattern.size() != path.size()) return false;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (is_capture(pattern[i])) {
      if (path[i].empty()) return false;
    } else if (pattern[i] != path[i]) {
      return false;
    }
  }
  return true;
}

}  // namespace

void router::add(std::string method, std::string pattern, int route_id) {
  if (pattern.empty() || pattern.front() != '/') pattern.insert(pattern.begin(), '/');
  entry e{std::move(method), pattern, {}, route_id};
  for (std::string_view seg : split(pattern)) e.segments.emplace_back(seg);
  entries_.push_back(std::move(e));
}

router::match router::resolve(std::string_view method, std::string_view path) const {
  match m;
  if (path.empty() || path.front() != '/') return m;
  const auto segments = split(path);
  // First registered pattern wins; Allow lists methods in registration order, once each.
  for (const entry& e : entries_) {
    if (!matches(e.segments, segments)) continue;
    if (e.method == method) {
      m.result = match::kind::found;
      m.route_id = e.route_id;
      m.pattern = e.pattern;
      m.allow.clear();
      for (std::size_t i = 0; i < e.segments.size(); ++i) {
        const std::string& seg = e.segments[i];
        if (is_capture(seg)) {
          m.params.emplace_back(seg.substr(1, seg.size() - 2), std::string(segments[i]));
        }
      }
      return m;
    }
    m.result = match::kind::method_not_allowed;
    bool listed = false;
    for (std::size_t pos = 0; pos < m.allow.size();) {
      std::size_t end = m.allow.find(", ", pos);
      if (end == std::string::npos) end = m.allow.size();
      if (std::string_view(m.allow).substr(pos, end - pos) == e.method) {
        listed = true;
        break;
      }
      pos = end + 2;
    }
    if (!listed) {
      if (!m.allow.empty()) m.allow += ", ";
      m.allow += e.method;
    }
  }
  return m;
}

}  // namespace credo::http
