#pragma once
// A value or an error code: how stores and services report failure without exceptions.
#include <cassert>
#include <string>
#include <utility>
#include <variant>

#include "protocols/errc.hpp"

namespace credo {

template <class T>
class result {
 public:
  result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  result(errc code, std::string description = {}) : v_(failure{code, std::move(description)}) {}

  explicit operator bool() const noexcept { return v_.index() == 0; }
  T& operator*() { return std::get<0>(v_); }
  const T& operator*() const { return std::get<0>(v_); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  errc error() const noexcept { return v_.index() == 0 ? errc::ok : std::get<1>(v_).code; }
  const std::string& description() const {
    static const std::string empty;
    return v_.index() == 0 ? empty : std::get<1>(v_).description;
  }

 private:
  struct failure {
    errc code;
    std::string description;
  };
  std::variant<T, failure> v_;
};

/// For operations that return nothing but may fail.
struct done {};
using status = result<done>;
inline status ok() { return done{}; }

}  // namespace credo
