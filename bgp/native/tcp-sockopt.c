/*
 * tcp-sockopt: the three system calls Node's net module does not offer, as a Node-API addon.
 *
 *   socket(domain)                        -> fd   a TCP socket (non-blocking, close-on-exec), not yet
 *                                                 connected, for `new net.Socket({ fd })` to adopt
 *   setsockopt(fd, level, name, buffer)   -> undefined   the option bytes are built in TypeScript
 *                                                 (bgp/socket-options.ts: struct tcp_md5sig, TTLs)
 *   close(fd)                             -> undefined   for a socket that never reached Node
 *
 * Failures throw an Error whose `errno` is the positive errno number. Nothing else lives here on
 * purpose: the struct layouts and every decision are in TypeScript, where they are tested.
 *
 * Built against Node-API only (ABI-stable: one build loads on every Node version with Node-API 4),
 * by scripts/build-native.sh into dist/bgp/native/tcp-sockopt.node.
 */
#define NAPI_VERSION 4
#include <node_api.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static napi_value throw_errno(napi_env env, const char *call, int err) {
  char text[200];
  napi_value message, number, error;
  snprintf(text, sizeof text, "%s: %s", call, strerror(err));
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
  napi_create_int32(env, err, &number);
  napi_create_error(env, NULL, message, &error);
  napi_set_named_property(env, error, "errno", number);
  napi_throw(env, error);
  return NULL;
}

static int int_arg(napi_env env, napi_value value, int32_t *out) {
  if (napi_get_value_int32(env, value, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected an integer argument");
    return 0;
  }
  return 1;
}

static napi_value js_socket(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  int32_t domain;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !int_arg(env, argv[0], &domain)) return NULL;
  int fd = socket(domain, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  napi_create_int32(env, fd, &result);
  return result;
}

static napi_value js_setsockopt(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int32_t fd, level, name;
  void *data;
  size_t length;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4 || !int_arg(env, argv[0], &fd) || !int_arg(env, argv[1], &level) || !int_arg(env, argv[2], &name)) return NULL;
  if (napi_get_buffer_info(env, argv[3], &data, &length) != napi_ok) {
    napi_throw_type_error(env, NULL, "the option value must be a Buffer");
    return NULL;
  }
  if (setsockopt(fd, level, name, data, (socklen_t)length) < 0) return throw_errno(env, "setsockopt", errno);
  return NULL;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1 || !int_arg(env, argv[0], &fd)) return NULL;
  if (close(fd) < 0) return throw_errno(env, "close", errno);
  return NULL;
}

static void export_function(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}

NAPI_MODULE_INIT() {
  export_function(env, exports, "socket", js_socket);
  export_function(env, exports, "setsockopt", js_setsockopt);
  export_function(env, exports, "close", js_close);
  return exports;
}
