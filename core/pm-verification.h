/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <glib.h>
#include <stdint.h>

#include "pm-noise.h"

G_BEGIN_DECLS

#define PM_VERIFICATION_CODE_LEN 8

char *pm_verification_code (const uint8_t handshake_hash[PM_NOISE_HASHLEN]);

G_END_DECLS
