#include "persistence/revocation_mirror.hpp"

#include "persistence/memory_stores.hpp"

namespace credo::persistence {

revocation_mirror::revocation_mirror(std::shared_ptr<revocation_store> durable)
  : durable_(std::move(durable)), local_(make_memory_revocation_store()) {}

status revocation_mirror::revoke_token(const std::string& jti, std::int64_t exp) {
  local_->revoke_token(jti, exp);
  if (listener_) {
    revocation_snapshot s;
    s.tokens.emplace_back(jti, exp);
    listener_(std::move(s));
  }
  return durable_->revoke_token(jti, exp);
}

status revocation_mirror::add_cutoff(const std::string& user_id, const std::string& client_id,
                                     const std::string& scope, std::int64_t cutoff) {
  local_->add_cutoff(user_id, client_id, scope, cutoff);
  if (listener_) {
    revocation_snapshot s;
    s.cutoffs.push_back({user_id, client_id, scope, cutoff});
    listener_(std::move(s));
  }
  return durable_->add_cutoff(user_id, client_id, scope, cutoff);
}

void revocation_mirror::on_write(std::function<void(revocation_snapshot)> listener) {
  listener_ = std::move(listener);
}

void revocation_mirror::apply(const revocation_snapshot& s) {
  for (auto& [jti, exp] : s.tokens)
    local_->revoke_token(jti, exp);
  for (auto& c : s.cutoffs)
    local_->add_cutoff(c.user_id, c.client_id, c.scope, c.cutoff);
}

result<bool> revocation_mirror::is_token_revoked(const std::string& jti) {
  if (!loaded())
    return {errc::temporarily_unavailable, "revocation list not loaded yet"};
  return local_->is_token_revoked(jti);
}

result<std::int64_t> revocation_mirror::cutoff(const std::string& user_id,
                                               const std::string& client_id,
                                               const std::string& scope) {
  if (!loaded())
    return {errc::temporarily_unavailable, "revocation list not loaded yet"};
  return local_->cutoff(user_id, client_id, scope);
}

result<revocation_snapshot> revocation_mirror::snapshot() {
  return local_->snapshot();
}

status revocation_mirror::sync() {
  auto snap = durable_->snapshot();
  if (!snap)
    return {snap.error(), snap.description()};
  apply(*snap);
  loaded_.store(true, std::memory_order_release);
  return ok();
}

bool revocation_mirror::loaded() const {
  return loaded_.load(std::memory_order_acquire);
}

}  // namespace credo::persistence
