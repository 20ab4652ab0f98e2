// @peculiar/x509 decorates its ASN.1 classes and crashes without this polyfill loaded first.
import "reflect-metadata";
