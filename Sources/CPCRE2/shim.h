#ifndef ALIGNERKIT_CPCRE2_SHIM_H
#define ALIGNERKIT_CPCRE2_SHIM_H
// The 8-bit (UTF-8) library.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif
