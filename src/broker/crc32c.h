/* SPDX-License-Identifier: Apache-2.0 */
/* CRC32C (Castagnoli), the checksum of broker log records: table-driven, 8 bytes per
 * step, no CPU-specific code. */
#ifndef TR_BROKER_CRC32C_H
#define TR_BROKER_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues `crc` (0 to start) over `n` bytes at `p`. */
uint32_t tr_crc32c(uint32_t crc, const void *p, size_t n);

#endif
