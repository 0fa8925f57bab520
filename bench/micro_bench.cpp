// Google Benchmark: the CPU cost of the pieces on the hot paths.
#include <benchmark/benchmark.h>

#include <nlohmann/json.hpp>

#include "actors/refresh_family.hpp"
#include "protocols/crypto.hpp"
#include "protocols/jwt.hpp"
#include "protocols/password.hpp"
#include "protocols/token_cache.hpp"

namespace {

using namespace credo::protocols;

nlohmann::json claims() {
  return {{"iss", "http://127.0.0.1:8080"}, {"sub", "9a5e5d38-3bf9-4264-b0d9-cb33daa0213d"},
          {"aud", "http://127.0.0.1:8080"}, {"exp", 4102444800},
          {"iat", 1700000000},              {"jti", "KKdkwRBHN8zAenwIBUa4lw"},
          {"client_id", "credo"},           {"scope", "openid profile"},
          {"sid", "WyhQHeapAqL4geumDcvF1Q"}};
}

key_ring& ring() {
  static key_ring r;
  static bool loaded = r.load({generate_signing_key(1)});
  (void) loaded;
  return r;
}

void jwt_sign(benchmark::State& state) {
  auto c = claims();
  for (auto _ : state)
    benchmark::DoNotOptimize(ring().sign(c));
}
BENCHMARK(jwt_sign)->ThreadRange(1, 2);

void jwt_verify(benchmark::State& state) {
  auto token = ring().sign(claims());
  for (auto _ : state)
    benchmark::DoNotOptimize(ring().verify(token, {"http://127.0.0.1:8080", 1700000001, 0}));
}
BENCHMARK(jwt_verify)->ThreadRange(1, 2);

void token_cache_hit(benchmark::State& state) {
  static verified_token_cache cache(100000);
  auto token = ring().sign(claims());
  cache.insert(token, std::make_shared<const verified_token>(verified_token{claims(), std::string{}}),
               4102444800);
  for (auto _ : state)
    benchmark::DoNotOptimize(cache.find(token, 1700000001));
}
BENCHMARK(token_cache_hit)->ThreadRange(1, 2);

void argon2id_owasp(benchmark::State& state) {
  for (auto _ : state)
    benchmark::DoNotOptimize(hash_password("correct horse battery staple"));
}
BENCHMARK(argon2id_owasp)->Unit(benchmark::kMillisecond)->ThreadRange(1, 2)->UseRealTime();

void refresh_token_and_hash(benchmark::State& state) {
  for (auto _ : state)
    benchmark::DoNotOptimize(sha256_hex(random_token(32)));
}
BENCHMARK(refresh_token_and_hash);

}  // namespace

BENCHMARK_MAIN();
