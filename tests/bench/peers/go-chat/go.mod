module gochat

go 1.19
