# source_files/program_4.py

from time import sleep

from qshpc import Job, update_status

print("==========")
print("update_status")
print(update_status(Job.MAPPING))
print("updated")
print("==========")

sleep(2)
