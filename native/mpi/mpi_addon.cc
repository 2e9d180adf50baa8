// batchnorm/mpi's addon (lib/mpi.ts): MPI_COMM_WORLD as a process group. Plain N-API: init() starts
// MPI, allGather() runs MPI_Allgather of doubles on the libuv thread pool (the event loop stays free while
// a peer is late) and settles a promise. MPI is finalized when the environment that started it goes away.
#include <mpi.h>
#include <node_api.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>

namespace {

std::mutex mpiMutex;  // one MPI call at a time, whatever thread level the library gives
bool started = false;

napi_value throwError(napi_env env, const std::string& message) {
  napi_throw_error(env, nullptr, message.c_str());
  return nullptr;
}

std::string mpiError(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, static_cast<size_t>(length));
}

void finalize(void* /*data*/) {
  std::lock_guard<std::mutex> lock(mpiMutex);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

// init(): { rank, size, threadLevel }. Starts MPI once per process (MPI_Init_thread, serialized calls
// at least), and finalizes it with the environment that started it.
napi_value Init(napi_env env, napi_callback_info /*info*/) {
  std::lock_guard<std::mutex> lock(mpiMutex);
  int provided = MPI_THREAD_SINGLE;
  if (!started) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      const int code = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
      if (code != MPI_SUCCESS) return throwError(env, "batchnorm/mpi: MPI_Init_thread failed: " + mpiError(code));
      napi_add_env_cleanup_hook(env, finalize, nullptr);
    } else {
      MPI_Query_thread(&provided);
    }
    if (provided < MPI_THREAD_SERIALIZED) {
      return throwError(env, "batchnorm/mpi: the MPI library gives only MPI_THREAD_SINGLE or FUNNELED; it needs SERIALIZED or more");
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    started = true;
  } else {
    MPI_Query_thread(&provided);
  }
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  napi_value result = nullptr, value = nullptr;
  napi_create_object(env, &result);
  napi_create_int32(env, rank, &value);
  napi_set_named_property(env, result, "rank", value);
  napi_create_int32(env, size, &value);
  napi_set_named_property(env, result, "size", value);
  napi_create_int32(env, provided, &value);
  napi_set_named_property(env, result, "threadLevel", value);
  return result;
}

struct Gather {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  napi_ref local = nullptr, out = nullptr;
  const double* localData = nullptr;
  double* outData = nullptr;
  int count = 0;
  int code = MPI_SUCCESS;
};

void execute(napi_env /*env*/, void* data) {
  auto* gather = static_cast<Gather*>(data);
  std::lock_guard<std::mutex> lock(mpiMutex);
  gather->code = MPI_Allgather(gather->localData, gather->count, MPI_DOUBLE, gather->outData, gather->count, MPI_DOUBLE,
                               MPI_COMM_WORLD);
}

void complete(napi_env env, napi_status status, void* data) {
  auto* gather = static_cast<Gather*>(data);
  if (status == napi_ok && gather->code == MPI_SUCCESS) {
    napi_value undefined = nullptr;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, gather->deferred, undefined);
  } else {
    const std::string message = status != napi_ok ? "batchnorm/mpi: the exchange was cancelled"
                                                  : "batchnorm/mpi: MPI_Allgather failed: " + mpiError(gather->code);
    napi_value text = nullptr, error = nullptr;
    napi_create_string_utf8(env, message.c_str(), message.size(), &text);
    napi_create_error(env, nullptr, text, &error);
    napi_reject_deferred(env, gather->deferred, error);
  }
  napi_delete_reference(env, gather->local);
  napi_delete_reference(env, gather->out);
  napi_delete_async_work(env, gather->work);
  delete gather;
}

// A Float64Array's data and length, or false.
bool doubles(napi_env env, napi_value value, double** data, size_t* length) {
  bool isTypedArray = false;
  if (napi_is_typedarray(env, value, &isTypedArray) != napi_ok || !isTypedArray) return false;
  napi_typedarray_type type;
  void* raw = nullptr;
  if (napi_get_typedarray_info(env, value, &type, length, &raw, nullptr, nullptr) != napi_ok) return false;
  *data = static_cast<double*>(raw);
  return type == napi_float64_array;
}

// allGather(local: Float64Array, out: Float64Array): Promise<void>. out holds size * local.length
// doubles and shares no memory with local; every rank passes the same length. lib/mpi.ts keeps both
// arrays unreachable by the caller until the promise settles.
napi_value AllGather(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  double *local = nullptr, *out = nullptr;
  size_t localLength = 0, outLength = 0;
  if (argc != 2 || !doubles(env, argv[0], &local, &localLength) || !doubles(env, argv[1], &out, &outLength)) {
    napi_throw_type_error(env, nullptr, "batchnorm/mpi: allGather(local, out) takes two Float64Arrays");
    return nullptr;
  }
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (!started || localLength > INT32_MAX || outLength != localLength * static_cast<size_t>(size)) {
    napi_throw_range_error(env, nullptr, "batchnorm/mpi: allGather needs init() first and out of size * local.length doubles");
    return nullptr;
  }
  auto* gather = new Gather();
  gather->localData = local;
  gather->outData = out;
  gather->count = static_cast<int>(localLength);
  napi_value promise = nullptr, name = nullptr;
  napi_create_reference(env, argv[0], 1, &gather->local);
  napi_create_reference(env, argv[1], 1, &gather->out);
  napi_create_promise(env, &gather->deferred, &promise);
  napi_create_string_utf8(env, "batchnorm/mpi", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, nullptr, name, execute, complete, gather, &gather->work);
  if (napi_queue_async_work(env, gather->work) != napi_ok) {
    complete(env, napi_generic_failure, gather);
  }
  return promise;
}

napi_value Initialize(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"init", nullptr, Init, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"allGather", nullptr, AllGather, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  return exports;
}

}  // namespace

NAPI_MODULE_INIT() { return Initialize(env, exports); }
