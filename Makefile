# A thin layer over meson so that two commands do everything:
#   make demo   install what is missing, build, run the walking skeleton
#   make test   install what is missing, build, run every test, then the
#               unit and integration tests again under ASan + UBSan
BUILD ?= build
ASAN_BUILD ?= build-asan
MESON_OPTS ?=

SAN_ENV = ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

.PHONY: all deps build demo test test-asan clean format

all: build

deps:
	@bash deploy/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_OPTS)

build: deps $(BUILD)/build.ninja
	meson compile -C $(BUILD)

demo: build
	bash client/demo/run-demo.sh $(BUILD)

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined \
		-Db_lundef=false -Dcuda=disabled $(MESON_OPTS)

test: build
	meson test -C $(BUILD) --print-errorlogs
	$(MAKE) test-asan

test-asan: deps $(ASAN_BUILD)/build.ninja
	meson compile -C $(ASAN_BUILD)
	$(SAN_ENV) meson test -C $(ASAN_BUILD) --suite unit --suite integration \
		--print-errorlogs

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
