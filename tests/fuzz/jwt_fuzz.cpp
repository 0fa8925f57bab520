// libFuzzer harness: arbitrary bytes as a bearer token. key_ring::verify promises to return an
// error value for any input; an exception, crash or sanitizer report is a bug. Build with clang
// -fsanitize=fuzzer,address,undefined (wired by tests/fuzz/CMakeLists.txt under CREDO_FUZZ).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "protocols/crypto.hpp"
#include "protocols/jwt.hpp"

namespace {

using namespace credo::protocols;

const key_ring& ring() {
  // One key generated per process: no input can carry a valid signature for it.
  static const key_ring* r = [] {
    auto* k = new key_ring();  // leaked on purpose: lives for the whole fuzzing process
    if (!k->load({generate_signing_key(1'700'000'000)})) std::abort();
    return k;
  }();
  return *r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  const jwt_verify_options options{"https://credo.fuzz", 1'700'000'000, 30};
  const jwt_verify_result result = ring().verify(input, options);
  // Accepting bytes not signed by our key would be a forgery.
  if (result || result.claims) std::abort();

  // Strict decoding means exactly one encoding per byte string: decode then encode is identity.
  if (const auto decoded = base64url_decode(input)) {
    if (base64url_encode(*decoded) != input) std::abort();
  }
  return 0;
}
