// Thin C shims for HDF5 macros that Swift cannot import (they expand to
// function calls or global ids resolved at library-initialisation time).
#ifndef CERTIFY_CHDF5_SHIM_H
#define CERTIFY_CHDF5_SHIM_H
#include <hdf5.h>
#include <string.h>

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
/// Identity of the object at `name` (relative to `loc`): its file number and address token, for
/// cycle-safe traversal. Returns a negative value when the object cannot be reached (e.g. a dangling link).
static inline int certify_object_key(hid_t loc, const char *name, unsigned long *fileno,
                                     unsigned long long *key0, unsigned long long *key1) {
#if H5_VERSION_GE(1, 12, 0)
    H5O_info2_t info;
    if (H5Oget_info_by_name3(loc, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return -1;
    unsigned long long k[2] = {0, 0};
    memcpy(k, &info.token, sizeof(info.token) < sizeof(k) ? sizeof(info.token) : sizeof(k));
    *fileno = info.fileno;
    *key0 = k[0];
    *key1 = k[1];
#else
    H5O_info_t info;
    if (H5Oget_info_by_name2(loc, name, &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return -1;
    *fileno = info.fileno;
    *key0 = (unsigned long long)info.addr;
    *key1 = 0;
#endif
    return 0;
}

/// The type of the link `name` (relative to `loc`): 0 hard, 1 soft, 64 external, negative on error.
static inline int certify_link_type(hid_t loc, const char *name) {
    H5L_info_t info;
    if (H5Lget_info(loc, name, &info, H5P_DEFAULT) < 0) return -1;
    return (int)info.type;
}
#endif
