/* Error checks for CUDA runtime and cuBLASLt calls, usable from C and C++: a failing
 * call fills the vp_error named `err` (in scope) with the statement, file and line and
 * makes the enclosing function return -1. Library code never exits on a device error. */
#ifndef VP_CUDA_CHECK_H
#define VP_CUDA_CHECK_H

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "engine/util/err.h"

/* Errors that leave the CUDA context unusable ("sticky": every later call fails the same
 * way; only a new process recovers) are VP_ERR_DEVICE, so the engine stops using the GPU
 * and the server reports itself failed; the rest are VP_ERR_INTERNAL. */
static inline vp_err_kind vp_cuda_error_kind(cudaError_t rc)
{
    switch (rc) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorAssert:
    case cudaErrorECCUncorrectable:
    case cudaErrorNvlinkUncorrectable:
    case cudaErrorLaunchTimeout:
    case cudaErrorDevicesUnavailable:
    case cudaErrorNoDevice:
    case cudaErrorContextIsDestroyed:
        return VP_ERR_DEVICE;
    default:
        return VP_ERR_INTERNAL;
    }
}

#define CUDA_CHECK(stmt)                                                                   \
    do {                                                                                   \
        cudaError_t vp_cuda_rc_ = (stmt);                                                  \
        if (vp_cuda_rc_ != cudaSuccess)                                                    \
            return vp_fail(err, vp_cuda_error_kind(vp_cuda_rc_), "cuda",                   \
                           "%s failed at %s:%d: %s (%s)",                                  \
                           #stmt, __FILE__, __LINE__, cudaGetErrorString(vp_cuda_rc_),     \
                           cudaGetErrorName(vp_cuda_rc_));                                 \
    } while (0)

/* A cuBLASLt call that fails on a lost context (its launch fails: EXECUTION_FAILED) is
 * the device's failure, as CUDA_CHECK would have found it: the runtime's last error says
 * which (peeked, not cleared: it is sticky anyway). */
static inline vp_err_kind vp_cublas_error_kind(cublasStatus_t rc)
{
    if (rc == CUBLAS_STATUS_SUCCESS)
        return VP_ERR_NONE;
    return vp_cuda_error_kind(cudaPeekAtLastError()) == VP_ERR_DEVICE ? VP_ERR_DEVICE
                                                                      : VP_ERR_INTERNAL;
}

#define CUBLAS_CHECK(stmt)                                                                 \
    do {                                                                                   \
        cublasStatus_t vp_cublas_rc_ = (stmt);                                             \
        if (vp_cublas_rc_ != CUBLAS_STATUS_SUCCESS)                                        \
            return vp_fail(err, vp_cublas_error_kind(vp_cublas_rc_), "cublas",             \
                           "%s failed at %s:%d: status %d", #stmt, __FILE__, __LINE__,     \
                           (int)vp_cublas_rc_);                                            \
    } while (0)

#endif
