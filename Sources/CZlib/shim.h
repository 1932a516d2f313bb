#ifndef ALIGNERKIT_CZLIB_SHIM_H
#define ALIGNERKIT_CZLIB_SHIM_H
#include <zlib.h>
#endif
