// libFuzzer harness for JSON request bodies: the depth guard and the parser every JSON route
// uses (http::parse_json_object), then the field accessors handlers apply.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "http/message.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body{reinterpret_cast<const char*>(data), size};
  auto j = credo::http::parse_json_object(body, 16);
  if (!j)
    return 0;
  if (!j->is_object())
    __builtin_trap();
  for (auto& [k, v] : j->items()) {
    if (v.is_string())
      (void) v.get_ref<const std::string&>().size();
    else if (v.is_array())
      for (auto& e : v)
        (void) e.is_string();
  }
  (void) j->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return 0;
}
