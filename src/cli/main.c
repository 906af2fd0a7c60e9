/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include "trellis/trellis.h"
int main(void) { printf("trellis %s\n", trellis_version()); return 0; }
