export { startControlPlane, DEFAULT_LISTEN, DEFAULT_PORT, type ControlPlane, type ControlPlaneOptions } from "./control-plane.js";
export { parseHostPort, formatHostPort } from "./listen-address.js";
