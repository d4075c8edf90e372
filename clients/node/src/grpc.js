// The one @grpc/grpc-js instance used by this package.
import * as grpc from '@grpc/grpc-js';

export { grpc };
