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
#include "genie/plan.pb-c.h"
#include "gn_error.h"
#include "plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
