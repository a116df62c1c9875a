// Package helloworld is the generated code of helloworld.proto.
package helloworld

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative helloworld.proto
