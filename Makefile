# SPDX-License-Identifier: Apache-2.0
# Thin wrapper over CMake/Ninja. `make test` and `make demo` install what is missing first.
BUILD       ?= build
BUILD_ASAN  ?= build-asan
BUILD_FUZZ  ?= build-fuzz
JOBS        ?= $(shell nproc)
FUZZ_SECONDS ?= 60
CMAKE_FLAGS ?=

.PHONY: all build build-asan deps test test-fast demo bench fuzz clean lint

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_FLAGS)

build: $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

$(BUILD_ASAN)/build.ninja:
	cmake -S . -B $(BUILD_ASAN) -G Ninja -DTRELLIS_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
	    -DCMAKE_C_FLAGS_DEBUG="-O1 -g" $(CMAKE_FLAGS)

build-asan: $(BUILD_ASAN)/build.ninja
	cmake --build $(BUILD_ASAN) -j $(JOBS)

# Everything: lint, the release build's suite, then the whole suite again under ASan+UBSan.
test: deps
	@scripts/lint.sh
	@$(MAKE) --no-print-directory build
	@$(MAKE) --no-print-directory build-asan
	@scripts/run-tests.sh $(BUILD) $(BUILD_ASAN)

# Release build only, for quick iteration.
test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: deps build
	@scripts/demo.sh $(BUILD)

bench: deps build
	@bench/run-all.sh $(BUILD)

fuzz: deps
	cmake -S . -B $(BUILD_FUZZ) -G Ninja -DCMAKE_C_COMPILER=clang -DTRELLIS_FUZZ=ON \
	    -DTRELLIS_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g"
	cmake --build $(BUILD_FUZZ) -j $(JOBS)
	@scripts/fuzz.sh $(BUILD_FUZZ) $(FUZZ_SECONDS)

lint:
	@scripts/lint.sh

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
