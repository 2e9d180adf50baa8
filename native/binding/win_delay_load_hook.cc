// Windows builds with mingw (the win32-x64 prebuild) import N-API from "node.exe" through delay-loading
// (an import library made by dlltool from node-api-headers' .def file), and this hook resolves that
// name to the executable that loaded the addon: a renamed host (electron.exe, a packaged app) provides
// N-API too. MSVC builds get the same from cmake-js's own hook.
#if defined(_WIN32) && defined(__MINGW32__)
#include <windows.h>

#include <delayimp.h>
#include <cstdint>
#include <cstring>

namespace {

FARPROC WINAPI resolveHost(unsigned event, PDelayLoadInfo info) {
  if (event != dliNotePreLoadLibrary || _stricmp(info->szDll, "node.exe") != 0) return nullptr;
  // The hook returns the module handle in a FARPROC, as the delay-load protocol defines.
  return reinterpret_cast<FARPROC>(reinterpret_cast<intptr_t>(GetModuleHandleW(nullptr)));
}

// Installed while the DLL loads, before Node calls napi_register_module_v1 (the first N-API call).
// mingw's delay-load helper defines the hook variable itself, so it is assigned rather than defined.
const struct HookInstaller {
  HookInstaller() { __pfnDliNotifyHook2 = resolveHost; }
} hookInstaller;

}  // namespace
#endif
