# vprm: the VisualPRM-8B scoring service.
#   make            release build: bin/vprm (CPU backend)
#   make CUDA=1     also the CUDA backend (nvcc, cuBLASLt; CUDA_ARCH=sm_90a by default:
#                   Hopper, whose wgmma attention needs the architecture-specific target)
#   make cuda-check the CUDA build in $(BUILD)/cuda + GPU check programs (part of `make test`
#                   wherever nvcc exists; tests/gpu/run.sh runs them on a GPU)
#   make test       installs missing packages, builds release + ASan/UBSan + TSan, runs every suite
#   make tsan       the daemon and the threaded unit tests under ThreadSanitizer ($(BUILD)/tsan)
#   make run        builds, generates the embedded tiny model, serves it on 127.0.0.1:8080
#   make bench      CPU benchmarks on the standard workloads (tiny scale)
#   make fuzz       coverage-guided fuzzing of every input parser (clang + libFuzzer,
#                   FUZZ_SECONDS per target, FUZZ_TARGETS to pick; tests/fuzz/README.md)

ifeq ($(origin CC),default)
  CC    := gcc
endif
PYTHON  ?= /usr/bin/python3
SHARED  ?= $(abspath ../shared)
CUDA    ?= 0
CUDA_HOME ?= /usr/local/cuda
CUDA_ARCH ?= sm_90a
NVCC    ?= $(CUDA_HOME)/bin/nvcc
HOST    ?= 127.0.0.1
PORT    ?= 8080
BUILD   ?= build
BIN     ?= bin/vprm

WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CFLAGS_COMMON := -std=c11 -D_GNU_SOURCE -pthread -I. -I/usr/include/stb $(WARN) -g
CFLAGS_rel  := $(CFLAGS_COMMON) -O2 -march=x86-64-v2
CFLAGS_asan := $(CFLAGS_COMMON) -O1 -march=x86-64-v2 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDLIBS  := -ljansson -lmicrohttpd -lgnutls -lcurl -lm -lpthread
LDFLAGS_asan := -fsanitize=address,undefined
# ThreadSanitizer: the daemon and the scheduler's tests under concurrent load (make tsan)
CFLAGS_tsan := $(CFLAGS_COMMON) -O1 -march=x86-64-v2 -fno-omit-frame-pointer -fsanitize=thread
LDFLAGS_tsan := -fsanitize=thread

# Library sources: everything under these folders except the CLI entry point and CUDA.
LIB_SRC := $(filter-out server/cli/main.c, \
             $(wildcard engine/*.c engine/*/*.c proto/*.c config/*.c server/*.c server/*/*.c))
LIB_SRC := $(filter-out engine/cuda/%, $(LIB_SRC))
MAIN_SRC := server/cli/main.c
TEST_SRC := $(wildcard tests/unit/test_*.c)
# Helper programs the suites drive (oracle comparisons, benchmarks).
TOOL_SRC := $(wildcard tests/tools/*.c)
# Fuzz targets: linked with libFuzzer by `make fuzz`, with tests/fuzz/replay.c (the
# checked-in corpus as a regression test) by `make test`.
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_CC  ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= $(patsubst tests/fuzz/%.c,%,$(FUZZ_SRC))
# the targets' objects are intermediate to make's chained rules: keep them
.SECONDARY: $(foreach v,asan fuzz,$(patsubst %.c,$(BUILD)/$(v)/%.o,$(FUZZ_SRC) tests/fuzz/replay.c))

CU_SRC  := $(wildcard engine/cuda/*.cu)
CU_CSRC := $(wildcard engine/cuda/*.c)

ifeq ($(CUDA),1)
  CFLAGS_rel += -DVP_WITH_CUDA -I$(CUDA_HOME)/include
  LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcudart -lstdc++
  CU_OBJ := $(patsubst %.cu,$(BUILD)/rel/%.o,$(CU_SRC)) $(patsubst %.c,$(BUILD)/rel/%.o,$(CU_CSRC))
  -include $(CU_OBJ:.o=.d)
else
  CU_OBJ :=
endif
comma := ,
# Machine code for CUDA_ARCH, plus PTX (for other GPUs to compile at load) unless the
# target is architecture-specific (sm_90a): no other GPU can use that PTX. The device
# code is compressed: the line tables (-lineinfo, for compute-sanitizer) of the attention
# kernels' variants made each binary 14 MB, and tests/gpu/pack.sh carries four of them
# to a GPU machine under a 64 MiB limit.
CUDA_PTX := $(if $(filter %a,$(CUDA_ARCH)),,$(comma)$(CUDA_ARCH:sm_%=compute_%))
NVCC_ARCH := -gencode arch=$(CUDA_ARCH:sm_%=compute_%),code=[$(CUDA_ARCH)$(CUDA_PTX)]
NVCCFLAGS := -std=c++17 -O3 -lineinfo $(NVCC_ARCH) -Xfatbin -compress-all -I. \
             -Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror -MMD -MP


.PHONY: all tools deps test test-unit test-oracle run bench clean tiny-model asan tsan cuda-check fuzz fuzz-build
all: $(BIN)

deps:
	@sh config/install-deps.sh

# Each variant's objects depend on a file holding its flags, rewritten when they change
# (CUDA=0/1 and CUDA_ARCH change the release flags): objects built with other flags are
# rebuilt, never linked with these.
flags_stamp = $(shell mkdir -p $(BUILD)/$(1) && { printf '%s\n' '$(2)' | cmp -s - $(BUILD)/$(1)/.flags || printf '%s\n' '$(2)' >$(BUILD)/$(1)/.flags; })
ifeq ($(filter clean,$(MAKECMDGOALS)),)
_ := $(call flags_stamp,rel,$(CC) $(CFLAGS_rel) $(LDLIBS) $(if $(filter 1,$(CUDA)),$(NVCC) $(NVCCFLAGS)))
_ := $(call flags_stamp,asan,$(CC) $(CFLAGS_asan) $(LDFLAGS_asan))
_ := $(call flags_stamp,tsan,$(CC) $(CFLAGS_tsan) $(LDFLAGS_tsan))
endif
$(BUILD)/%/.flags:
	@mkdir -p $(dir $@) && touch $@

define variant
$(BUILD)/$(1)/%.o: %.c $(BUILD)/$(1)/.flags
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS_$(1)) -MMD -MP -c $$< -o $$@
$(BUILD)/$(1)/libvprm.a: $$(patsubst %.c,$(BUILD)/$(1)/%.o,$$(LIB_SRC))
	@mkdir -p $$(dir $$@)
	rm -f $$@ && ar rcs $$@ $$^
$(BUILD)/$(1)/tests/%: tests/unit/%.c $(BUILD)/$(1)/libvprm.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS_$(1)) -MMD -MP $$< $(BUILD)/$(1)/libvprm.a -o $$@ $$(LDFLAGS_$(1)) $$(LDLIBS) $$(LDWRAP)
$(BUILD)/$(1)/tools/%: tests/tools/%.c $(BUILD)/$(1)/libvprm.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS_$(1)) -MMD -MP $$< $(BUILD)/$(1)/libvprm.a -o $$@ $$(LDFLAGS_$(1)) $$(LDLIBS)
$(BUILD)/$(1)/fuzz/%: $(BUILD)/$(1)/tests/fuzz/%.o $(BUILD)/$(1)/tests/fuzz/replay.o $(BUILD)/$(1)/libvprm.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS_$(1)) $$^ -o $$@ $$(LDFLAGS_$(1)) $$(LDLIBS)
-include $$(patsubst %.c,$(BUILD)/$(1)/%.d,$$(LIB_SRC) $$(MAIN_SRC) $$(TEST_SRC) $$(TOOL_SRC) \
    $$(FUZZ_SRC) tests/fuzz/replay.c)
endef
# test_alloc_*: the library's allocations pass through the test's own wrappers, which
# fail the one it picks (tests/unit/test_alloc_failures.c)
LDWRAP :=
$(BUILD)/asan/tests/test_alloc_%: LDWRAP := \
    -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup,--wrap=aligned_alloc \
    -Wl,--wrap=vp_json_parse
$(eval $(call variant,rel))
$(eval $(call variant,asan))
$(eval $(call variant,tsan))
# proto/openapi.c embeds proto/openapi.json (.incbin), which -MMD's lists do not name
$(foreach v,rel asan tsan fuzz,$(BUILD)/$(v)/proto/openapi.o): proto/openapi.json

$(BUILD)/rel/engine/cuda/%.o: engine/cuda/%.cu $(BUILD)/rel/.flags
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

# The CUDA objects come before the library: they use its planning code.
$(BIN): $(BUILD)/rel/$(MAIN_SRC:.c=.o) $(CU_OBJ) $(BUILD)/rel/libvprm.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_rel) $^ -o $@ $(LDLIBS)
	@echo "built $@ (CUDA=$(CUDA)$(if $(filter 1,$(CUDA)),$(comma) arch $(CUDA_ARCH),))"

$(BUILD)/asan/vprm: $(BUILD)/asan/$(MAIN_SRC:.c=.o) $(BUILD)/asan/libvprm.a
	$(CC) $(CFLAGS_asan) $^ -o $@ $(LDFLAGS_asan) $(LDLIBS)

$(BUILD)/tsan/vprm: $(BUILD)/tsan/$(MAIN_SRC:.c=.o) $(BUILD)/tsan/libvprm.a
	$(CC) $(CFLAGS_tsan) $^ -o $@ $(LDFLAGS_tsan) $(LDLIBS)

TEST_BINS_asan := $(patsubst tests/unit/%.c,$(BUILD)/asan/tests/%,$(TEST_SRC))
TOOLS_rel  := $(patsubst tests/tools/%.c,$(BUILD)/rel/tools/%,$(TOOL_SRC))
TOOLS_asan := $(patsubst tests/tools/%.c,$(BUILD)/asan/tools/%,$(TOOL_SRC))
FUZZ_asan  := $(patsubst tests/fuzz/%.c,$(BUILD)/asan/fuzz/%,$(FUZZ_SRC))
asan: $(BUILD)/asan/vprm $(TEST_BINS_asan) $(TOOLS_asan) $(FUZZ_asan)
tools: $(TOOLS_rel)
# the daemon and the unit tests with threads, under ThreadSanitizer
TSAN_TESTS := test_sched test_image_cache test_cpu_model test_fetch_pool test_key_quota test_key_usage
tsan: $(BUILD)/tsan/vprm $(patsubst %,$(BUILD)/tsan/tests/%,$(TSAN_TESTS))

test: deps
	$(MAKE) $(BIN) tools asan tsan
	@if [ -x "$(NVCC)" ] || command -v "$(NVCC)" >/dev/null 2>&1; then \
	  $(MAKE) cuda-check; \
	else echo "cuda-check skipped: $(NVCC) not found (no CUDA toolkit on this machine)"; fi
	VPRM=$(BIN) VPRM_ASAN=$(BUILD)/asan/vprm SHARED=$(SHARED) PYTHON=$(PYTHON) \
	  VPRM_TOOLS=$(BUILD)/rel/tools VPRM_TOOLS_ASAN=$(BUILD)/asan/tools \
	  VPRM_TSAN=$(BUILD)/tsan/vprm VPRM_TSAN_TESTS=$(BUILD)/tsan/tests \
	  VPRM_FUZZ_REPLAY=$(BUILD)/asan/fuzz sh tests/run_all.sh $(BUILD)/asan/tests

# The CUDA build (own build folder, CPU objects not mixed) and the GPU check programs,
# ptxas's verdict on the wgmma attention (asynchronous products, no spills), then the
# CPU-side check of the GPU tests' PyTorch reference; needs nvcc, no GPU
# (tests/gpu/run.sh is what runs on a GPU).
cuda-check:
	$(MAKE) CUDA=1 BUILD=$(BUILD)/cuda BIN=$(BUILD)/cuda/vprm $(BUILD)/cuda/vprm
	NVCC="$(NVCC)" CUDA_HOME="$(CUDA_HOME)" CUDA_ARCH="$(CUDA_ARCH)" sh tests/gpu/build.sh $(BUILD)/cuda
	NVCC="$(NVCC)" CUDA_HOME="$(CUDA_HOME)" CUDA_ARCH="$(CUDA_ARCH)" sh tests/gpu/ptxas_check.sh
	PYTHON=$(PYTHON) sh tests/gpu/check_cpu.sh $(BUILD)/cuda

tiny-model: $(BIN)
	$(BIN) mkmodel --scale tiny --seed 1 --tokenizer engine/assets/tiny_tokenizer --out $(BUILD)/tiny-model --force

run:
	@sh config/install-deps.sh --build
	$(MAKE) tiny-model
	$(BIN) serve --model $(BUILD)/tiny-model --host $(HOST) --port $(PORT)

bench: tiny-model
	$(BIN) bench --model $(BUILD)/tiny-model

# libFuzzer builds (clang; every library object instrumented for coverage), then each
# target fuzzed for FUZZ_SECONDS from its checked-in corpus (tests/fuzz/run.sh).
CFLAGS_fuzz := $(CFLAGS_COMMON) -O1 -march=x86-64-v2 -fno-omit-frame-pointer \
               -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
$(BUILD)/fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CFLAGS_fuzz) -MMD -MP -c $< -o $@
$(BUILD)/fuzz/libvprm.a: $(patsubst %.c,$(BUILD)/fuzz/%.o,$(LIB_SRC))
	rm -f $@ && ar rcs $@ $^
$(BUILD)/fuzz/bin/%: $(BUILD)/fuzz/tests/fuzz/%.o $(BUILD)/fuzz/libvprm.a
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CFLAGS_fuzz) $^ -o $@ -fsanitize=fuzzer,address,undefined $(LDLIBS)
ifneq ($(findstring fuzz,$(MAKECMDGOALS)),)
-include $(patsubst %.c,$(BUILD)/fuzz/%.d,$(LIB_SRC) $(FUZZ_SRC))
endif
fuzz-build:
	@sh config/install-deps.sh clang libclang-rt-dev
	$(MAKE) $(patsubst %,$(BUILD)/fuzz/bin/%,$(FUZZ_TARGETS))
fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) SHARED=$(SHARED) sh tests/fuzz/run.sh $(BUILD)/fuzz $(FUZZ_TARGETS)

clean:
	rm -rf $(BUILD) $(BIN)
