/*
 * libgenie: record tensor work lazily and run it locally or on a remote
 * Genie runtime. Include this one header for the whole public API.
 */
#ifndef GENIE_GENIE_H
#define GENIE_GENIE_H

#include <genie/error.h>
#include <genie/onnx.h>
#include <genie/ops.h>
#include <genie/resident.h>
#include <genie/session.h>
#include <genie/tensor.h>
#include <genie/types.h>

#define GN_VERSION_MAJOR 0
#define GN_VERSION_MINOR 1

#endif /* GENIE_GENIE_H */
