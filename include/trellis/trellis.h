/* SPDX-License-Identifier: Apache-2.0 */
/* libtrellis: the public SDK. Everything exported is marked TRELLIS_API; all other
 * symbols in the library are hidden. */
#ifndef TRELLIS_TRELLIS_H
#define TRELLIS_TRELLIS_H

#ifdef __cplusplus
extern "C" {
#endif

#define TRELLIS_API __attribute__((visibility("default")))

/* The library's version, "MAJOR.MINOR.PATCH". */
TRELLIS_API const char *trellis_version(void);

#ifdef __cplusplus
}
#endif

#endif
