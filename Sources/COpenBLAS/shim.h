#ifndef ALIGNERKIT_COPENBLAS_SHIM_H
#define ALIGNERKIT_COPENBLAS_SHIM_H
#include <cblas.h>
#endif
