// Works around a bug of caf::openssl 0.17.6 (the Debian package; we may not patch or vendor
// it): its session code never clears OpenSSL's per-thread error queue before SSL_read,
// SSL_write, SSL_accept or SSL_connect, and SSL_get_error() reports SSL_ERROR_SSL whenever that
// queue is not empty. One refused or broken TLS connection (a peer with a certificate of another
// CA, a port scanner, a node killed mid-stream) leaves an error on the middleman's only network
// thread, and the next would-block read on a healthy link is then taken for a failure: CAF
// closes the link and the member is dropped. OpenSSL's documentation requires the queue to be
// empty before each of these calls, so this executable interposes the four functions (symbols of
// the executable take precedence over those of shared libraries), clears the queue and calls
// the real function. See docs/decisions/0010-cluster.md.
#include <dlfcn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace {

template <class Fn>
Fn real(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" {

int SSL_read(SSL* s, void* buf, int num) {
  static auto fn = real<int (*)(SSL*, void*, int)>("SSL_read");
  ERR_clear_error();
  return fn(s, buf, num);
}

int SSL_write(SSL* s, const void* buf, int num) {
  static auto fn = real<int (*)(SSL*, const void*, int)>("SSL_write");
  ERR_clear_error();
  return fn(s, buf, num);
}

int SSL_accept(SSL* s) {
  static auto fn = real<int (*)(SSL*)>("SSL_accept");
  ERR_clear_error();
  return fn(s);
}

int SSL_connect(SSL* s) {
  static auto fn = real<int (*)(SSL*)>("SSL_connect");
  ERR_clear_error();
  return fn(s);
}

}  // extern "C"
