/* Loads a musl build of the addon with musl's dynamic loader, as Node on Alpine would, and calls its
 * N-API version entry point. musl binds every symbol at load time, so the N-API functions the addon
 * imports must exist: scripts/check-musl.js compiles this file with a stub for each of them (never
 * called) and exports them from the executable.
 *   dlopen_check <batchnorm.node>   prints the N-API version the module was built for */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  void* module = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (module == NULL) {
    fprintf(stderr, "dlopen failed: %s\n", dlerror());
    return 1;
  }
  int (*version)(void) = (int (*)(void))dlsym(module, "node_api_module_get_api_version_v1");
  void* registration = dlsym(module, "napi_register_module_v1");
  if (version == NULL || registration == NULL) {
    fprintf(stderr, "the module's N-API entry points are missing\n");
    return 1;
  }
  printf("dlopen_check: loaded under musl; built for N-API version %d\n", version());
  return 0;
}
