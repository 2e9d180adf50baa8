'use strict';
// `npm run build:mpi`: builds batchnorm/mpi's addon (native/mpi) against this machine's MPI with cmake-js,
// into build-mpi/Release/batchnorm_mpi.node. MPI implementations share no ABI, so it is built where it
// runs, never prebuilt; it needs MPI's headers and library (Debian: openmpi-bin libopenmpi-dev, or mpich
// libmpich-dev), cmake and a C++17 compiler.
const { runCmakeJs } = require('./install.js');

const status = runCmakeJs(['rebuild', '--directory', 'native/mpi', '--out', 'build-mpi']);
if (status !== 0) {
  console.error(
    'batchnorm: building batchnorm/mpi failed. It needs an MPI library with its headers (Debian/Ubuntu: ' +
      'apt-get install openmpi-bin libopenmpi-dev), cmake (>= 3.15) and a C++17 compiler; see the messages above.',
  );
  process.exit(status);
}
console.log('batchnorm: built build-mpi/Release/batchnorm_mpi.node; import { mpiWorld } from \'batchnorm/mpi\'');
