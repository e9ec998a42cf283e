#ifndef BILLA_CZSTD_SHIM_H
#define BILLA_CZSTD_SHIM_H
#include <zstd.h>
#endif
