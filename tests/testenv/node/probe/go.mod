module taskjob.dev/testenv-probe

go 1.22
