// libFuzzer harness for the form, percent-encoding and Authorization parsers.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/message.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace credo::http;
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  if (auto form = parse_form(in)) {
    // Keys are unique by contract.
    for (std::size_t i = 0; i < form->size(); ++i) {
      for (std::size_t j = i + 1; j < form->size(); ++j) {
        if ((*form)[i].first == (*form)[j].first) __builtin_trap();
      }
    }
  }
  (void)url_decode(in, false);
  (void)url_decode(in, true);
  // Encoding then decoding is the identity, with or without '+' as space.
  const std::string encoded = url_encode(in);
  auto back = url_decode(encoded, true);
  if (!back || *back != in) __builtin_trap();
  (void)sane_request_id(in);

  request req;
  req.headers.emplace_back("authorization", std::string(in));
  req.headers.emplace_back("content-type", std::string(in));
  (void)bearer_token(req);
  (void)basic_credentials(req);
  (void)media_type(req);
  request basic;
  basic.headers.emplace_back("authorization", "Basic " + std::string(in));
  (void)basic_credentials(basic);
  return 0;
}
