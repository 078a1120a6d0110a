#ifndef CERTIFY_COPENBLAS_SHIM_H
#define CERTIFY_COPENBLAS_SHIM_H
#include <cblas.h>
// Declared by OpenBLAS's cblas.h; repeated here so the symbol is visible to Swift
// even when a different cblas.h is first on the include path.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
#endif
