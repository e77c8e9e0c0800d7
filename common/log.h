/*
 * Per-component logging with levels (after DPDK's RTE_LOG_REGISTER).
 *
 * Each component declares itself once with GN_LOG_REGISTER(name) in one .c
 * file (and GN_LOG_EXTERN(name) in a header when other files log under the
 * same name), then logs with GN_LOG(ERR, name, "fmt", ...). Levels are set
 * for all components or one by the GENIE_LOG environment variable, read at
 * first use: "info", "debug", or "transport=debug,runtime=warning,*=info".
 * Lines go to stderr as "TIME LEVEL component: message".
 */
#ifndef GN_COMMON_LOG_H
#define GN_COMMON_LOG_H

#include <stdbool.h>

enum gn_log_level {
	GN_LOG_LEVEL_ERR = 1,
	GN_LOG_LEVEL_WARNING = 2,
	GN_LOG_LEVEL_NOTICE = 3,
	GN_LOG_LEVEL_INFO = 4,
	GN_LOG_LEVEL_DEBUG = 5,
};

struct gn_log_component {
	const char *name;
	int level; /* -1 until first use resolves it from GENIE_LOG */
	struct gn_log_component *next;
};

#define GN_LOG_COMPONENT(name) gn_log_component_##name

#define GN_LOG_REGISTER(name)                                                 \
	struct gn_log_component GN_LOG_COMPONENT(name) = {#name, -1, NULL};   \
	__attribute__((constructor)) static void gn_log_register_##name(void) \
	{                                                                     \
		gn_log_component_register(&GN_LOG_COMPONENT(name));           \
	}

#define GN_LOG_EXTERN(name) \
	extern struct gn_log_component GN_LOG_COMPONENT(name)

#define GN_LOG(level, name, ...)                                         \
	do {                                                             \
		if (gn_log_enabled(&GN_LOG_COMPONENT(name),              \
				   GN_LOG_LEVEL_##level))                \
			gn_log_write(&GN_LOG_COMPONENT(name),            \
				     GN_LOG_LEVEL_##level, __VA_ARGS__); \
	} while (0)

void gn_log_component_register(struct gn_log_component *c);
bool gn_log_enabled(struct gn_log_component *c, int level);
void gn_log_write(const struct gn_log_component *c, int level, const char *fmt,
		  ...) __attribute__((format(printf, 3, 4)));

/*
 * Apply a level spec ("debug", "tcp=debug,*=warning") to every registered
 * component. Returns 0, or -EINVAL naming the bad word in gn_last_error().
 */
int gn_log_set_levels(const char *spec);

/* Parse a level name ("err", "warning", "notice", "info", "debug"). */
int gn_log_level_parse(const char *name);

#endif /* GN_COMMON_LOG_H */
