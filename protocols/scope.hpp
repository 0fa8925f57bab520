#pragma once
// OAuth scopes (RFC 6749 3.3) and the first-party client, shared by the HTTP handlers and the
// session entity.
#include <string>
#include <string_view>
#include <vector>

namespace credo::protocols {

/// The built-in public client that /auth/login issues tokens to; its login scopes need no
/// consent.
inline const std::string first_party_client = "credo";

/// Space-separated scope string to its distinct tokens, in order.
std::vector<std::string> split_scope(std::string_view scope);
std::string join_scope(const std::vector<std::string>& scopes);
/// RFC 6749 3.3 NQCHAR token of 1..64 characters.
bool valid_scope_token(std::string_view s);

}  // namespace credo::protocols
