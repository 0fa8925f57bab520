# Writes OUT: a C++ source defining `std::string_view NAME()` that returns the bytes of IN.
# Run at build time (cmake -P) so that editing IN rebuilds only that source.
file(READ "${IN}" content)
set(delimiter "credo_embed")
string(FIND "${content}" ")${delimiter}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${IN} contains the raw-string delimiter )${delimiter}\"")
endif()
file(WRITE "${OUT}.tmp"
  "// Generated from ${IN} by http/embed.cmake. Do not edit.\n"
  "#include <string_view>\n"
  "namespace credo::http {\n"
  "std::string_view ${NAME}() {\n"
  "  static constexpr std::string_view text = R\"${delimiter}(${content})${delimiter}\";\n"
  "  return text;\n"
  "}\n"
  "}  // namespace credo::http\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
