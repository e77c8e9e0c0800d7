/*
 * Fuzz target: the runtime's plan decoder. Any bytes go through the capped
 * protobuf unpack and gn_plan_decode(); the only acceptable outcomes are a
 * valid plan or a negative errno with a message. Built as a libFuzzer
 * target with clang, and with driver.c as a fixed-seed test everywhere.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "frame.h"
#include "fuzz.h"
#include "genie/plan.pb-c.h"
#include "gn_error.h"
#include "plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Genie__Plan *pb;
	struct gn_plan *plan = NULL;
	int rc;

	pb = (Genie__Plan *)gn_pb_unpack(&genie__plan__descriptor, data, size,
					 1 << 20);
	if (pb == NULL) {
		if (gn_last_error()[0] == '\0')
			abort(); /* an error without words is a bug */
		return 0;
	}
	rc = gn_plan_decode(pb, &plan);
	if (rc != 0 && (rc >= 0 || gn_last_error()[0] == '\0'))
		abort();
	if (rc == 0) {
		/* A plan that decodes must be internally consistent. */
		for (uint32_t i = 0; i < plan->nnodes; i++)
			for (uint32_t k = 0; k < plan->nodes[i].nin; k++)
				if (plan->nodes[i].in[k] >= i)
					abort();
		gn_plan_free(&plan);
	}
	protobuf_c_message_free_unpacked(&pb->base, NULL);
	return 0;
}

/* A valid plan: input -> relu -> conv-like chain with attributes. */
size_t fuzz_seed(uint8_t *out, size_t cap, int variant)
{
	static uint8_t handle[16] = {1, 2, 3};
	int64_t s_in[] = {2, 3}, s_w[] = {3, 4}, s_mm[] = {2, 4};
	int64_t perm[] = {1, 0}, s_t[] = {4, 2};
	Genie__TensorMeta m_in = GENIE__TENSOR_META__INIT, m_w = m_in,
			  m_mm = m_in, m_t = m_in;
	Genie__Node n[5];
	Genie__Node *np[5];
	uint32_t in1[] = {0}, in2[] = {1, 4}, in3[] = {2};
	uint32_t outputs[] = {3};
	Genie__Plan plan = GENIE__PLAN__INIT;
	size_t len;

	for (int i = 0; i < 5; i++) {
		genie__node__init(&n[i]);
		np[i] = &n[i];
	}
	m_in.dtype = m_w.dtype = m_mm.dtype = m_t.dtype =
		GENIE__DTYPE__DTYPE_F32;
	m_in.n_shape = m_w.n_shape = m_mm.n_shape = m_t.n_shape = 2;
	m_in.shape = s_in;
	m_w.shape = s_w;
	m_mm.shape = s_mm;
	m_t.shape = s_t;
	n[0].op = GENIE__OP_TYPE__OP_INPUT;
	n[0].out = &m_in;
	n[0].handle.data = handle;
	n[0].handle.len = 16;
	n[1].op = GENIE__OP_TYPE__OP_RELU;
	n[1].n_inputs = 1;
	n[1].inputs = in1;
	n[1].out = &m_in;
	n[4].op = GENIE__OP_TYPE__OP_INPUT;
	n[4].out = &m_w;
	n[4].handle.data = handle;
	n[4].handle.len = 16;
	/* Node order 0,1,4 then matmul and permute keeps operands earlier. */
	Genie__Node *order[] = {&n[0], &n[1], &n[4], &n[2], &n[3]};
	in2[1] = 2;
	n[2].op = GENIE__OP_TYPE__OP_MATMUL;
	n[2].n_inputs = 2;
	n[2].inputs = in2;
	n[2].out = &m_mm;
	in3[0] = 3;
	n[3].op = GENIE__OP_TYPE__OP_PERMUTE;
	n[3].n_inputs = 1;
	n[3].inputs = in3;
	n[3].n_iattrs = 2;
	n[3].iattrs = perm;
	n[3].out = &m_t;
	outputs[0] = 4;
	plan.schema_version = GN_SCHEMA_VERSION;
	plan.n_nodes = variant ? 2 : 5;
	plan.nodes = variant ? np : order;
	plan.n_outputs = 1;
	plan.outputs = variant ? in3 : outputs;
	if (variant)
		in3[0] = 1;
	plan.fingerprint = 0x1234;
	len = genie__plan__get_packed_size(&plan);
	if (len > cap)
		return 0;
	return genie__plan__pack(&plan, out);
}
