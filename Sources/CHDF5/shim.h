// Thin C shims for HDF5 macros that Swift cannot import (they expand to
// function calls or global ids resolved at library-initialisation time).
#ifndef CERTIFY_CHDF5_SHIM_H
#define CERTIFY_CHDF5_SHIM_H
#include <hdf5.h>

static inline hid_t certify_H5P_DEFAULT(void) { return H5P_DEFAULT; }
static inline hid_t certify_H5S_ALL(void) { return H5S_ALL; }
static inline unsigned certify_H5F_ACC_RDONLY(void) { return H5F_ACC_RDONLY; }
static inline unsigned certify_H5F_ACC_RDWR(void) { return H5F_ACC_RDWR; }
static inline unsigned certify_H5F_ACC_TRUNC(void) { return H5F_ACC_TRUNC; }
static inline unsigned certify_H5F_ACC_EXCL(void) { return H5F_ACC_EXCL; }
static inline hid_t certify_H5T_NATIVE_DOUBLE(void) { return H5T_NATIVE_DOUBLE; }
static inline hid_t certify_H5T_NATIVE_FLOAT(void) { return H5T_NATIVE_FLOAT; }
static inline hid_t certify_H5T_NATIVE_INT64(void) { return H5T_NATIVE_INT64; }
static inline hid_t certify_H5T_NATIVE_INT32(void) { return H5T_NATIVE_INT32; }
static inline hid_t certify_H5T_NATIVE_UINT8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t certify_H5T_NATIVE_INT8(void) { return H5T_NATIVE_INT8; }
static inline hid_t certify_H5T_NATIVE_HBOOL(void) { return H5T_NATIVE_HBOOL; }
static inline hid_t certify_H5T_C_S1(void) { return H5T_C_S1; }
static inline hid_t certify_H5T_STD_I8LE(void) { return H5T_STD_I8LE; }
static inline hid_t certify_H5P_DATASET_CREATE(void) { return H5P_DATASET_CREATE; }
static inline hid_t certify_H5P_LINK_CREATE(void) { return H5P_LINK_CREATE; }
static inline hsize_t certify_H5S_UNLIMITED(void) { return H5S_UNLIMITED; }

/// Silence HDF5's automatic error-stack printing for the default stack.
static inline void certify_H5_silence_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/// Check whether a file looks like HDF5 without triggering error prints.
static inline int certify_H5F_is_hdf5(const char *name) { return (int)H5Fis_hdf5(name); }
#endif
