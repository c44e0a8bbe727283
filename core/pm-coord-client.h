/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

/*
 * PmCoordClient: a device's client for the coordination server's HTTP API
 * (docs/API.md, "Coordination HTTP API"): enrollment, the device list,
 * candidates, wake (sending one and holding the long-poll) and revocation.
 *
 * It owns one SoupSession, made in the thread-default main context of the
 * thread that creates the client: use it from that thread only. Every call is
 * an _async/_finish pair with a GCancellable; a cancelled call fails with
 * G_IO_ERROR_CANCELLED, every other failure is in PM_COORD_CLIENT_ERROR.
 *
 * Server answers are outside input: the pm_coord_client_parse_*() functions
 * below parse them strictly (types checked, sizes bounded) and return either a
 * complete result or an error, never something half-filled. They are pure, so
 * tests and the fuzzer (tests/fuzz/fuzz-coord-json.c) call them directly.
 */

#include <gio/gio.h>
#include <stdint.h>

#include "pm-mesh-limits.h"

G_BEGIN_DECLS

/* Limits and timers: core/pm-mesh-limits.h. */

/* --- Errors ----------------------------------------------------------------- */

#define PM_COORD_CLIENT_ERROR (pm_coord_client_error_quark ())

/**
 * PmCoordClientError:
 * @PM_COORD_CLIENT_ERROR_INVALID_URI: the server URL is malformed, or plain
 *   http:// to anything but a loopback address (use https://)
 * @PM_COORD_CLIENT_ERROR_NOT_ENROLLED: the call needs a device token and the
 *   client has none (enroll first)
 * @PM_COORD_CLIENT_ERROR_INVALID_ARGUMENT: the server refused what was sent
 *   (HTTP 400, e.g. a name it does not accept), or a device id is malformed
 * @PM_COORD_CLIENT_ERROR_UNAUTHORIZED: the token is unknown or was revoked
 *   (HTTP 401): enroll again
 * @PM_COORD_CLIENT_ERROR_INVALID_KEY: the enrollment key is unknown, expired
 *   or used (HTTP 403 invalid_enrollment_key): ask for a new one
 * @PM_COORD_CLIENT_ERROR_FORBIDDEN: another device's candidates (HTTP 403)
 * @PM_COORD_CLIENT_ERROR_NOT_FOUND: no such device in this account (HTTP 404)
 * @PM_COORD_CLIENT_ERROR_CONFLICT: this public key is already enrolled (409)
 * @PM_COORD_CLIENT_ERROR_RATE_LIMITED: too soon (HTTP 429); see
 *   pm_coord_client_error_get_retry_after()
 * @PM_COORD_CLIENT_ERROR_SERVER_ERROR: the server failed or is unavailable
 *   (HTTP 5xx): try again later
 * @PM_COORD_CLIENT_ERROR_INVALID_RESPONSE: the answer is not what the API
 *   promises (status, size, JSON shape or values)
 * @PM_COORD_CLIENT_ERROR_NETWORK: the server could not be reached (DNS,
 *   connection, TLS, timeout)
 */
typedef enum {
  PM_COORD_CLIENT_ERROR_INVALID_URI,
  PM_COORD_CLIENT_ERROR_NOT_ENROLLED,
  PM_COORD_CLIENT_ERROR_INVALID_ARGUMENT,
  PM_COORD_CLIENT_ERROR_UNAUTHORIZED,
  PM_COORD_CLIENT_ERROR_INVALID_KEY,
  PM_COORD_CLIENT_ERROR_FORBIDDEN,
  PM_COORD_CLIENT_ERROR_NOT_FOUND,
  PM_COORD_CLIENT_ERROR_CONFLICT,
  PM_COORD_CLIENT_ERROR_RATE_LIMITED,
  PM_COORD_CLIENT_ERROR_SERVER_ERROR,
  PM_COORD_CLIENT_ERROR_INVALID_RESPONSE,
  PM_COORD_CLIENT_ERROR_NETWORK,
} PmCoordClientError;

GQuark   pm_coord_client_error_quark (void);
unsigned pm_coord_client_error_get_retry_after (const GError *error);

/* --- Results ----------------------------------------------------------------- */

/* What enrollment gives: the token is a secret (wiped when freed; never log it). */
typedef struct {
  char *device_id;  /* "dev_" + 32 hex digits */
  char *token;      /* "pmdt_…" */
  char *account_id; /* "acc_" + 32 hex digits */
} PmEnrollment;

void pm_enrollment_free (PmEnrollment *enrollment);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PmEnrollment, pm_enrollment_free)

/* One device of the account, as listed. */
typedef struct {
  char               *id;
  char               *name;
  char               *type;     /* mac, linux, windows, iphone, ipad, watch, android, … */
  char               *key_type; /* secret-service, file, … */
  uint8_t             public_key[32];
  GDateTime          *last_seen; /* UTC; NULL: never seen */
  gboolean            online;
  gboolean            has_candidates; /* FALSE: never published (the rest is empty) */
  GPtrArray          *addresses;      /* GInetSocketAddress; never NULL */
  GInetSocketAddress *mapped;         /* the STUN-mapped address, or NULL */
  gboolean            mapping_varies;
} PmDeviceInfo;

#define PM_TYPE_DEVICE_INFO (pm_device_info_get_type ())
GType         pm_device_info_get_type (void) G_GNUC_CONST;
PmDeviceInfo *pm_device_info_copy (const PmDeviceInfo *info);
void          pm_device_info_free (PmDeviceInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PmDeviceInfo, pm_device_info_free)

/* --- The client ------------------------------------------------------------ */

#define PM_TYPE_COORD_CLIENT (pm_coord_client_get_type ())
G_DECLARE_FINAL_TYPE (PmCoordClient, pm_coord_client, PM, COORD_CLIENT, GObject)

PmCoordClient *pm_coord_client_new (const char *base_uri,
                                    const char *token,
                                    GError    **error);
const char    *pm_coord_client_get_base_uri (PmCoordClient *self);
gboolean       pm_coord_client_get_enrolled (PmCoordClient *self);
const char    *pm_coord_client_get_token (PmCoordClient *self);
gboolean       pm_coord_client_set_token (PmCoordClient *self,
                                          const char    *token,
                                          GError       **error);

void          pm_coord_client_enroll_async (PmCoordClient      *self,
                                            const char         *enrollment_key,
                                            const char         *public_key_hex,
                                            const char         *name,
                                            const char         *type,
                                            const char         *key_type,
                                            GCancellable       *cancellable,
                                            GAsyncReadyCallback callback,
                                            gpointer            user_data);
PmEnrollment *pm_coord_client_enroll_finish (PmCoordClient *self,
                                             GAsyncResult  *result,
                                             GError       **error);

void       pm_coord_client_list_devices_async (PmCoordClient      *self,
                                               GCancellable       *cancellable,
                                               GAsyncReadyCallback callback,
                                               gpointer            user_data);
GPtrArray *pm_coord_client_list_devices_finish (PmCoordClient *self,
                                                GAsyncResult  *result,
                                                GError       **error);

void     pm_coord_client_put_candidates_async (PmCoordClient      *self,
                                               const char         *device_id,
                                               GPtrArray          *addresses,
                                               GInetSocketAddress *mapped,
                                               gboolean            mapping_varies,
                                               GCancellable       *cancellable,
                                               GAsyncReadyCallback callback,
                                               gpointer            user_data);
gboolean pm_coord_client_put_candidates_finish (PmCoordClient *self,
                                                GAsyncResult  *result,
                                                GError       **error);

void     pm_coord_client_wake_async (PmCoordClient      *self,
                                     const char         *device_id,
                                     GCancellable       *cancellable,
                                     GAsyncReadyCallback callback,
                                     gpointer            user_data);
gboolean pm_coord_client_wake_finish (PmCoordClient *self,
                                      GAsyncResult  *result,
                                      unsigned      *out_long_polls,
                                      gboolean      *out_push,
                                      GError       **error);

void  pm_coord_client_wait_wake_async (PmCoordClient      *self,
                                       GCancellable       *cancellable,
                                       GAsyncReadyCallback callback,
                                       gpointer            user_data);
char *pm_coord_client_wait_wake_finish (PmCoordClient *self,
                                        GAsyncResult  *result,
                                        GError       **error);

void     pm_coord_client_revoke_async (PmCoordClient      *self,
                                       const char         *device_id,
                                       GCancellable       *cancellable,
                                       GAsyncReadyCallback callback,
                                       gpointer            user_data);
gboolean pm_coord_client_revoke_finish (PmCoordClient *self,
                                        GAsyncResult  *result,
                                        GError       **error);

/* --- Parsing (pure; for tests and fuzzing) ---------------------------------- */

PmEnrollment       *pm_coord_client_parse_enrollment (const char *json,
                                                      gsize       len,
                                                      GError    **error);
GPtrArray          *pm_coord_client_parse_devices (const char *json,
                                                   gsize       len,
                                                   GError    **error);
gboolean            pm_coord_client_parse_candidates (const char          *json,
                                                      gsize                len,
                                                      GPtrArray          **out_addresses,
                                                      GInetSocketAddress **out_mapped,
                                                      gboolean            *out_mapping_varies,
                                                      GError             **error);
char               *pm_coord_client_parse_wake (const char *json,
                                                gsize       len,
                                                GError    **error);
gboolean            pm_coord_client_parse_wake_sent (const char *json,
                                                     gsize       len,
                                                     unsigned   *out_long_polls,
                                                     gboolean   *out_push,
                                                     GError    **error);
GError             *pm_coord_client_error_from_response (unsigned    status,
                                                         const char *retry_after,
                                                         const char *json,
                                                         gsize       len);
GInetSocketAddress *pm_coord_client_parse_address (const char *text);
gboolean            pm_coord_client_device_id_is_valid (const char *id);

G_END_DECLS
