// Peer credentials of a connected unix socket, for Workload API attestation.
//
// Node exposes no SO_PEERCRED, so this addon reads what the kernel recorded when the
// client called connect(): its pid, uid and gid (they cannot be forged by the client),
// and, where the kernel has SO_PEERPIDFD (Linux 6.5+), a pidfd that pins the exact
// process, so a pid reused after the client exits can be told apart from it.
// Plain C against Node-API only, so one build works across Node versions.
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, "ERR_PEERCRED", message);
  return NULL;
}

static int int_arg(napi_env env, napi_callback_info info, int32_t *out) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) return -1;
  if (napi_get_value_int32(env, argv[0], out) != napi_ok) return -1;
  return 0;
}

static void set_int(napi_env env, napi_value object, const char *name, int64_t value) {
  napi_value v;
  napi_create_int64(env, value, &v);
  napi_set_named_property(env, object, name, v);
}

// peerCredentials(fd) -> { pid, uid, gid, pidfd }  (pidfd is -1 when the kernel has none)
static napi_value peer_credentials(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (int_arg(env, info, &fd) != 0 || fd < 0) {
    napi_throw_type_error(env, "ERR_PEERCRED", "peerCredentials(fd) needs a file descriptor");
    return NULL;
  }
  struct ucred cred;
  socklen_t len = sizeof cred;
  memset(&cred, 0, sizeof cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return throw_errno(env, "getsockopt(SO_PEERCRED)", errno);
  if (len != sizeof cred || cred.pid <= 0) {
    napi_throw_error(env, "ERR_PEERCRED", "the kernel recorded no peer process for this socket");
    return NULL;
  }
  int pidfd = -1;
  socklen_t pidfd_len = sizeof pidfd;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &pidfd_len) != 0) pidfd = -1;
  napi_value result;
  napi_create_object(env, &result);
  set_int(env, result, "pid", cred.pid);
  set_int(env, result, "uid", cred.uid);
  set_int(env, result, "gid", cred.gid);
  set_int(env, result, "pidfd", pidfd);
  return result;
}

// pidfdAlive(pidfd) -> boolean: signal 0 through the pidfd reaches only the original process.
static napi_value pidfd_alive(napi_env env, napi_callback_info info) {
  int32_t pidfd;
  if (int_arg(env, info, &pidfd) != 0 || pidfd < 0) {
    napi_throw_type_error(env, "ERR_PEERCRED", "pidfdAlive(pidfd) needs a pidfd");
    return NULL;
  }
  long rc = syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0);
  if (rc != 0 && errno != ESRCH && errno != EPERM) return throw_errno(env, "pidfd_send_signal", errno);
  napi_value result;
  // EPERM means the process exists but belongs to someone else: still alive.
  napi_get_boolean(env, rc == 0 || errno == EPERM, &result);
  return result;
}

// closeFd(fd): pidfds are owned by JavaScript once handed out.
static napi_value close_fd(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (int_arg(env, info, &fd) != 0 || fd < 0) {
    napi_throw_type_error(env, "ERR_PEERCRED", "closeFd(fd) needs a file descriptor");
    return NULL;
  }
  close(fd);
  return NULL;
}

// clockTicks() -> sysconf(_SC_CLK_TCK), the unit of /proc/<pid>/stat start times.
static napi_value clock_ticks(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_create_int64(env, sysconf(_SC_CLK_TCK), &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"peerCredentials", NULL, peer_credentials, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pidfdAlive", NULL, pidfd_alive, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closeFd", NULL, close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"clockTicks", NULL, clock_ticks, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
