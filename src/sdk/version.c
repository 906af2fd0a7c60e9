/* SPDX-License-Identifier: Apache-2.0 */
/* libtrellis version query. */
#include "trellis/trellis.h"

const char *trellis_version(void)
{
    return TRELLIS_VERSION;
}
